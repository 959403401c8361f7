"""python manage.py export_dataset --project SLUG --format trl-dpo --out PATH [rules]"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.io import rules as export_rules
from annotation.io import writers
from annotation.models import Project
from annotation.services import exports
from prefloop.exceptions import ApplicationError

FLAGS = {  # flag -> (ExportRules field, argparse options)
    "--vote": ("vote", {"choices": export_rules.VOTES}),
    "--min-judgments": ("min_judgments", {"type": int}),
    "--min-agreement": ("min_agreement", {"type": float}),
    "--ties": ("ties", {"choices": export_rules.TIES}),
    "--both-bad": ("both_bad", {"choices": export_rules.BOTH_BAD}),
    "--min-gold-accuracy": ("min_gold_accuracy", {"type": float}),
    "--min-gold-answers": ("min_gold_answers", {"type": int}),
    "--split": ("split", {"choices": export_rules.SPLITS}),
    "--kto-sources": ("kto_sources", {"choices": export_rules.KTO_SOURCES}),
}
SWITCHES = {  # flag -> (ExportRules field, value)
    "--exclude-ai": ("include_ai", False),
    "--exclude-imported": ("include_imported", False),
    "--no-metadata": ("metadata_columns", False),
}


class Command(BaseCommand):
    help = (
        "Export a snapshot in a TRL layout: --out x.jsonl writes JSONL, any other path a "
        "Hugging Face datasets folder (save_to_disk). Rules: --rules JSON and/or the flags "
        "below (flags win). See docs/data-formats.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", required=True, choices=list(writers.FORMATS))
        parser.add_argument("--out", required=True, type=Path, help="x.jsonl, or a folder")
        parser.add_argument("--rules", default="", help="ExportRules as JSON, or @file.json")
        for flag, (field, options) in FLAGS.items():
            parser.add_argument(flag, dest=field, default=None, **options)
        for flag, (field, value) in SWITCHES.items():
            parser.add_argument(flag, dest=field, action="store_const", const=value)

    def handle(self, *args, project: str, format: str, out: Path, rules: str, **options) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"project {project!r} does not exist")
        chosen = self._rules(rules, options)
        try:
            snapshot, created = exports.export_snapshot_create(
                project=target, fmt=format, rules=chosen
            )
            written = exports.export_snapshot_write(snapshot=snapshot, out=out)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        counts = snapshot.counts
        self.stdout.write(
            f"{'new' if created else 'existing'} snapshot {snapshot.content_hash} "
            f"({counts['rows']} rows; dropped: {json.dumps(counts['dropped'])})"
        )
        self.stdout.write(f"snapshot folder: {snapshot.path}")
        for path in written:
            self.stdout.write(f"wrote {path}")

    def _rules(self, text: str, options: dict) -> export_rules.ExportRules:
        try:
            if text.startswith("@"):
                text = Path(text[1:]).read_text("utf-8")
            data = json.loads(text) if text else {}
            if not isinstance(data, dict):
                raise ValueError("--rules must be a JSON object")
            fields = [field for field, _ in (*FLAGS.values(), *SWITCHES.values())]
            data.update({f: options[f] for f in fields if options.get(f) is not None})
            return export_rules.ExportRules.from_dict(data)
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"bad export rules: {exc}") from exc
