"""Build the tiny demo model (tokenizer + Qwen2 LM trained from scratch) and register it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from generation import services
from generation.demo.build import build_demo_model

BASE_NAME = "demo-base"


class Command(BaseCommand):
    help = "Train the demo tokenizer and model (a few minutes on 2 cores) unless already built."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", type=Path, default=settings.DEMO_MODEL_DIR)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--steps", type=int, default=None, help="Pre-training steps.")

    def handle(self, *args, out: Path, seed: int, steps: int | None, **options) -> None:
        metadata = build_demo_model(out, seed=seed, steps=steps, log=self.stdout.write)
        version = services.model_version_register(
            name=BASE_NAME,
            source=str(Path(out).resolve()),
            notes="Tiny Qwen2 model trained from scratch on the demo capitals task.",
            metadata=metadata,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"model version {version.name} (id {version.pk}) at {version.source}; "
                f"base held-out accuracy {metadata.get('heldout_accuracy')}"
            )
        )
