"""python manage.py import_prompts --project SLUG [--create] [--owner USER] [--partial] FILE"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.io.readers import FORMATS
from annotation.services import imports
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Import prompts, prompt + responses, TRL preference pairs or TRL KTO rows from JSONL, "
        "CSV or a Hugging Face datasets folder (save_to_disk). Nothing is imported from a file "
        "with a bad row unless --partial is given. See docs/data-formats.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="JSONL or CSV file, or a datasets folder")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--create", action="store_true", help="make the project if missing")
        parser.add_argument("--owner", help="owner of a project made by --create "
                            "(default: the first superuser)")
        parser.add_argument("--partial", action="store_true",
                            help="import the good rows of a file that has bad ones")
        parser.add_argument("--format", choices=FORMATS, default="auto")

    def handle(self, *args, file: Path, project: str, create: bool, owner: str | None,
               partial: bool, format: str, **options) -> None:
        try:
            target, created = imports.import_project_resolve(
                slug=project, create=create, owner_username=owner
            )
            report = imports.import_file(project=target, path=file, fmt=format, partial=partial)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if created:
            self.stdout.write(f"created project {target.slug}")
        self._report_print(report)
        if not report.imported:
            raise CommandError(
                f"{len(report.errors)} bad row(s): nothing was imported "
                "(fix them, or pass --partial to import the good rows)"
            )

    def _report_print(self, report: imports.ImportReport) -> None:
        for error in report.errors:
            self.stderr.write(f"{error['where']}: {error['reason']}")
        for warning in report.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"{report.format} file of {report.kind} rows: {report.rows} read, "
            f"{report.rows_valid} valid, {report.rows_imported} imported"
        )
        if report.imported:
            for name in imports.ENTITIES:
                self.stdout.write(
                    f"  {name}: {report.created[name]} created, {report.existing[name]} existing"
                )
