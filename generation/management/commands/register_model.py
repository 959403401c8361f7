"""Register a model version: a local Hugging Face folder (as the workers see it) or a hub id."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation import services
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Register a model version (idempotent for the same name and source)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="Slug naming the version, e.g. demo-round-1.")
        parser.add_argument("source", help="Local model folder or Hugging Face hub id.")
        parser.add_argument("--parent", default="", help="Name of the version it derives from.")
        parser.add_argument("--round", type=int, default=None, dest="round_index")
        parser.add_argument("--notes", default="")

    def handle(self, *args, name: str, source: str, parent: str, round_index, notes: str, **_):
        try:
            version = services.model_version_register_checked(
                name=name,
                source=source,
                parent_name=parent,
                round_index=round_index,
                notes=notes,
            )
        except (ValidationError, ApplicationError) as exc:
            raise CommandError(getattr(exc, "message", None) or "; ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"model version {version.name} (id {version.pk}, v{version.version}) "
                f"-> {version.source}"
            )
        )
