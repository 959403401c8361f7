"""Import prompts, responses and existing verdicts: validate the whole file, then write.

A file with any bad row imports nothing unless ``partial`` is asked for; then the good
rows are imported and the bad ones reported. Everything is written in one transaction
(one savepoint per row), and every creator is idempotent, so importing a file twice
creates nothing new. Imported pairs become a pairwise task with an imported judgment
(choice ``a`` = chosen) by the project's import pseudo-annotator; imported KTO labels
become feedback on a binary task. Each counts as one judgment towards the task's overlap.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from rest_framework import status

from annotation.io.readers import FileRejected, FileTooLarge
from annotation.io.validate import ImportLimits, Validation, file_validate
from annotation.models import Project
from annotation.services import import_rows, projects
from annotation.services.import_rows import IMPORT_USER_PREFIX, import_user_get_or_create
from prefloop.exceptions import ApplicationError, NotFoundError

__all__ = ["IMPORT_USER_PREFIX", "import_user_get_or_create"]
ENTITIES = ("prompts", "responses", "tasks", "judgments", "feedback")


class ImportRejected(ApplicationError):
    """The file as a whole cannot be imported (unreadable, empty, unknown format)."""


class ImportTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class _Rollback(Exception):
    def __init__(self, issues: list[dict]) -> None:
        super().__init__("import rolled back")
        self.issues = issues


@dataclass
class ImportReport:
    imported: bool
    format: str
    kind: str | None
    rows: int
    rows_valid: int
    rows_imported: int = 0
    errors: list[dict] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    job: int | None = None  # set when a background ImportJob writes the rows

    def as_dict(self) -> dict:
        return {**self.__dict__, "error_count": len(self.errors)}


def import_limits() -> ImportLimits:
    """Limits from settings; field and row limits are optional settings with defaults."""
    return ImportLimits(
        max_bytes=settings.PREFLOOP_MAX_IMPORT_BYTES,
        max_field_chars=settings.PREFLOOP_MAX_IMPORT_FIELD_CHARS,
        max_rows=settings.PREFLOOP_MAX_IMPORT_ROWS,
        max_responses_per_row=settings.PREFLOOP_IMPORT_MAX_RESPONSES_PER_ROW,
        max_zip_entries=settings.PREFLOOP_IMPORT_MAX_ZIP_ENTRIES,
    )


def import_file(
    *,
    project: Project,
    path: Path,
    fmt: str = "auto",
    partial: bool = False,
    limits: ImportLimits | None = None,
    source_name: str = "",
    batched: bool | None = None,
) -> ImportReport:
    """Validate ``path`` completely, then import it (or nothing).

    Small files are written in one transaction; one that would write more than
    ``PREFLOOP_IMPORT_SYNC_MAX_WRITES`` rows + tasks (or with ``batched``) commits in
    short batches (``import_rows.rows_write_batched``)."""
    validation = file_check(Path(path), fmt, limits or import_limits())
    return import_validated(
        project=project, validation=validation, partial=partial,
        source=source_name or Path(path).name, batched=batched,
    )


def import_validated(
    *,
    project: Project,
    validation: Validation,
    partial: bool,
    source: str,
    batched: bool | None = None,
) -> ImportReport:
    """Write the rows of a validated file (see ``import_file``)."""
    report = report_start(validation)
    if (validation.issues and not partial) or not validation.rows:
        return report
    writes = writes_check(project=project, validation=validation)
    if batched is None:
        batched = writes > settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES
    if batched:
        counts, issues = import_rows.rows_write_batched(
            project=project, rows=validation.rows, source=source,
            batch_seconds=settings.PREFLOOP_IMPORT_BATCH_SECONDS,
        )
        return report_finish(report, rows=len(validation.rows), counts=counts, issues=issues)
    try:
        with transaction.atomic():
            counts, issues = import_rows.rows_write(project, validation.rows, source)
            if issues and not partial:
                raise _Rollback(issues)
    except _Rollback as rollback:
        report.errors = sorted(report.errors + rollback.issues, key=lambda e: e["line"])
        return report
    return report_finish(report, rows=len(validation.rows), counts=counts, issues=issues)


def import_upload(
    *,
    project: Project,
    upload: UploadedFile,
    fmt: str = "auto",
    partial: bool = False,
    created_by: AbstractBaseUser | None = None,
) -> ImportReport:
    """An uploaded file (JSONL, CSV, or a zip of a ``save_to_disk`` folder).

    One that would write more than ``PREFLOOP_IMPORT_SYNC_MAX_WRITES`` rows + tasks is
    validated here and written by a background ``ImportJob`` (``report.job`` is set)."""
    limits = import_limits()
    if upload.size is not None and upload.size > limits.max_bytes:
        raise ImportTooLarge(
            f"the file is {upload.size:,} bytes; the import limit is {limits.max_bytes:,} "
            "bytes (PREFLOOP_MAX_IMPORT_BYTES): split it into smaller files"
        )
    suffix = Path(upload.name or "").suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="prefloop-upload-") as scratch:
        for chunk in upload.chunks():
            scratch.write(chunk)
        scratch.flush()
        path, name = Path(scratch.name), upload.name or ""
        try:
            return _upload_import(project, path, fmt, partial, limits, name, created_by)
        except ApplicationError as exc:
            exc.message = paths_hidden(str(exc.message), path)
            raise


def _upload_import(project, path: Path, fmt: str, partial: bool, limits, name: str, created_by):
    validation = file_check(path, fmt, limits)
    report = report_start(validation)
    if (validation.issues and not partial) or not validation.rows:
        return report
    writes = writes_check(project=project, validation=validation)
    if writes <= settings.PREFLOOP_IMPORT_SYNC_MAX_WRITES:
        return import_validated(
            project=project, validation=validation, partial=partial, source=name or path.name
        )
    from annotation.services import import_jobs  # it imports this module

    job = import_jobs.import_job_create(
        project=project, path=path, fmt=validation.format, partial=partial, source_name=name,
        rows=len(validation.rows), tasks_planned=writes - len(validation.rows),
        created_by=created_by,
    )
    report.job = job.pk
    return report


def writes_check(*, project: Project, validation: Validation) -> int:
    """Rows + tasks the import may write; over ``PREFLOOP_IMPORT_MAX_TASKS`` tasks is a 413."""
    planned = import_rows.tasks_planned(project=project, rows=validation.rows)
    limit = settings.PREFLOOP_IMPORT_MAX_TASKS
    if planned > limit:
        raise ImportTooLarge(
            f"the file would create up to {planned:,} tasks; the limit is {limit:,} per "
            "import (PREFLOOP_IMPORT_MAX_TASKS): split it into smaller files"
        )
    return planned + len(validation.rows)


def report_finish(
    report: ImportReport, *, rows: int, counts: Counter, issues: list
) -> ImportReport:
    report.errors = sorted(report.errors + issues, key=lambda e: e["line"])
    report.rows_imported = rows - len(issues)
    report.imported = report.rows_imported > 0
    report.created = {name: counts[(name, True)] for name in ENTITIES}
    report.existing = {name: counts[(name, False)] for name in ENTITIES}
    return report


def paths_hidden(message: str, path: Path) -> str:
    """``message`` without server paths: the upload's scratch file and the temp folder."""
    message = message.replace(str(path), "the upload")
    temp = re.escape(tempfile.gettempdir().rstrip("/"))
    return re.sub(temp + r"/[^\s'\",:;)]*", "<temporary file>", message)


def file_check(path: Path, fmt: str, limits: ImportLimits) -> Validation:
    """``file_validate`` with whole-file problems as 400/413 application errors."""
    try:
        return file_validate(path, fmt=fmt, limits=limits)
    except FileTooLarge as exc:
        raise ImportTooLarge(str(exc)) from exc
    except FileRejected as exc:
        raise ImportRejected(str(exc)) from exc


@transaction.atomic
def import_project_resolve(
    *, slug: str, create: bool = False, owner_username: str | None = None
) -> tuple[Project, bool]:
    """The project to import into; with ``create`` a missing one is made for its owner."""
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    if not create:
        raise NotFoundError(f"project {slug!r} does not exist (pass --create to make it)")
    users = get_user_model().objects
    if owner_username:
        owner = users.filter(username=owner_username).first()
        if owner is None:
            raise NotFoundError(f"user {owner_username!r} does not exist")
    else:
        owner = users.filter(is_superuser=True).order_by("pk").first()
        if owner is None:
            raise ApplicationError("no superuser exists to own the project: pass --owner USERNAME")
    return projects.project_create(slug=slug, owner=owner), True


def report_start(validation: Validation) -> ImportReport:
    report = ImportReport(
        imported=False,
        format=validation.format,
        kind=validation.kind,
        rows=validation.records,
        rows_valid=len(validation.rows),
        errors=[issue.as_dict() for issue in validation.issues],
    )
    if validation.ignored_columns:
        report.warnings.append(f"ignored columns: {', '.join(validation.ignored_columns)}")
    return report
