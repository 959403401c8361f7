"""python manage.py train --project SLUG --algorithm dpo [--snapshot HASH] [--policy NAME] ..."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.selectors.exports import export_snapshot_get
from annotation.services.exports import export_snapshot_create
from generation.models import ModelVersion
from prefloop.exceptions import ApplicationError
from training import services
from training.management.params import key_value_param
from training.models import TrainingRun

DEFAULT_FORMAT = {"kto": "trl-kto"}


class Command(BaseCommand):
    help = "Train a new model version on a project's export snapshot (foreground by default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--algorithm", default="dpo", choices=sorted(services.FORMATS_FOR))
        parser.add_argument("--snapshot", default="", help="Export hash; empty = export now.")
        parser.add_argument("--policy", default="demo-base", help="Model version name.")
        parser.add_argument("--reference", default="", help="Model version; default = policy.")
        parser.add_argument("--output-name", default="")
        parser.add_argument("--lr", type=float, help="Learning rate (default 5e-7; demo: 1e-4).")
        parser.add_argument("--beta", type=float)
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Other trainer setting (python -m training.core.train -h).",
        )
        parser.add_argument("--enqueue", action="store_true", help="Run on a train worker.")
        parser.add_argument(
            "--processes", type=int, default=1, help="Trainer processes per node (torchrun)."
        )
        parser.add_argument(
            "--nodes", type=int, default=1,
            help="Nodes; > 1 needs PREFLOOP_TRAINING_RDZV_ENDPOINT (docs/training.md).",
        )

    def handle(self, *args, **o) -> None:
        try:
            run = self._create(o)
        except (Project.DoesNotExist, ModelVersion.DoesNotExist) as exc:
            raise CommandError(str(exc)) from exc
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if o["enqueue"]:
            self.stdout.write(f"run {run.pk} queued on the train queue")
            return
        self.stdout.write(f"run {run.pk}: training {run.algorithm} in {run.run_dir}")
        run = services.training_run_execute(run_id=run.pk)
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error}\n{run.log_tail}")
        self.stdout.write(
            self.style.SUCCESS(
                f"run {run.pk} succeeded: model version {run.output_version.name} "
                f"({run.output_version.source}); eval {json.dumps(run.summary.get('eval'))}"
            )
        )

    def _create(self, o: dict) -> TrainingRun:
        project = Project.objects.get(slug=o["project"])
        if o["snapshot"]:
            snapshot = export_snapshot_get(content_hash=o["snapshot"], project=project)
        else:
            fmt = DEFAULT_FORMAT.get(o["algorithm"], "trl-dpo-conversational")
            snapshot, _ = export_snapshot_create(project=project, fmt=fmt)
        params = dict(key_value_param(p) for p in o["param"])
        for key in ("lr", "beta", "epochs", "batch_size"):
            if o[key] is not None:
                params[key] = o[key]
        policy = ModelVersion.objects.get(name=o["policy"])
        reference = ModelVersion.objects.get(name=o["reference"]) if o["reference"] else None
        return services.training_run_create(
            project=project, algorithm=o["algorithm"], snapshot=snapshot, policy=policy,
            reference=reference, hyperparameters=params, output_name=o["output_name"],
            enqueue=o["enqueue"], processes=o["processes"], nodes=o["nodes"],
        )
