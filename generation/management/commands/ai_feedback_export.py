"""Turn AI feedback into a training snapshot (soft labels or CAI revisions).

    python manage.py ai_feedback_export --project demo --judge NAME --min-probability 0.7
    python manage.py ai_feedback_export --project demo --source revisions --format trl-sft

Prints the snapshot's content hash, which a training run names.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation.feedback import training_data
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Export AI soft labels or CAI revisions as TRL DPO / SFT rows."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--source", choices=training_data.SOURCES, default="soft_labels")
        parser.add_argument("--format", choices=list(training_data.FORMATS), default="trl-dpo")
        parser.add_argument("--judge", default="", help="Soft labels: the judge's name.")
        parser.add_argument("--min-probability", type=float, default=0.5)
        parser.add_argument("--include-routed", action="store_true")
        parser.add_argument("--split", choices=training_data.SPLITS, default="train")
        parser.add_argument("--constitution", default="", help="Revisions: only this one.")

    def handle(self, *args, **o) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        try:
            rules = training_data.ConversionRules(
                source=o["source"], judge=o["judge"], min_probability=o["min_probability"],
                include_routed=o["include_routed"], split=o["split"],
                constitution=o["constitution"],
            )
            snapshot, created = training_data.ai_export_create(project=project, fmt=o["format"],
                                                               rules=rules)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        state = "new" if created else "existing"
        self.stdout.write(
            f"{state} snapshot {snapshot.content_hash} ({snapshot.format}, "
            f"{snapshot.counts['rows']} rows) in {snapshot.path}"
        )
