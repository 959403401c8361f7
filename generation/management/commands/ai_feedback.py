"""Label a project's comparisons with an AI judge (a feedback job).

    python manage.py ai_feedback --project demo --judge constitutional --model demo-base --wait
    python manage.py ai_feedback --project demo \\
        --judge programmatic:generation.feedback.judges.programmatic.demo_capital_score --here
    python manage.py ai_feedback --project demo --judge reward-model:rm-v1 --scope unlabelled

By default the job goes to the ``gpu`` queue; ``--here`` runs it in this process.
Afterwards, ``python manage.py judge_trust --project demo --judge NAME`` says how well
the judge agrees with people.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation import selectors as generation_selectors
from generation.feedback import runner, selectors
from generation.feedback.models import FeedbackJob
from generation.feedback.services import jobs, judges
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Label comparisons with an AI judge: constitutional, programmatic or reward model."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--judge", required=True, help=(
            "constitutional | programmatic:package.module.function | reward-model:VERSION | "
            "the name of an existing judge"))
        parser.add_argument("--model", default="", help="Constitutional: the judging model.")
        parser.add_argument("--constitution", default="", help="NAME or NAME@VERSION.")
        parser.add_argument("--principles-per-label", type=int, default=1)
        parser.add_argument("--cot", action="store_true", help="Reason first (clamped 40-60%%).")
        parser.add_argument("--temperature", type=float, default=None,
                            help="Programmatic / reward model: Bradley-Terry temperature.")
        parser.add_argument("--judge-seed", type=int, default=0, help="Principle sampling.")
        parser.add_argument("--scope", choices=selectors.SCOPES, default="all")
        parser.add_argument("--min-agreement", type=float, default=0.75)
        parser.add_argument("--generation-job", type=int, default=None)
        parser.add_argument("--task", type=int, action="append", dest="task_ids")
        parser.add_argument("--split", choices=["", "train", "eval"], default="")
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--min-confidence", type=float, default=0.2)
        parser.add_argument("--audit", action="store_true",
                            help="The judge adds its own slot instead of taking a human's.")
        parser.add_argument("--here", action="store_true", help="Run in this process.")
        parser.add_argument("--wait", action="store_true", help="Print progress until done.")

    def handle(self, *args, **o) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        try:
            judge = self._judge(o)
            job = jobs.feedback_job_create(
                project=project, judge=judge, scope=o["scope"], min_agreement=o["min_agreement"],
                generation_job_id=o["generation_job"], task_ids=o["task_ids"], split=o["split"],
                limit=o["limit"], batch_size=o["batch_size"], min_confidence=o["min_confidence"],
                takes_human_slot=not o["audit"], enqueue=not o["here"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"feedback job {job.pk}: {job.total} comparisons, judge {judge.name}")
        if o["here"]:
            job = runner.feedback_job_run(job_id=job.pk)
        elif o["wait"]:
            job = wait(self, job)
        report(self, job)

    def _judge(self, o):
        spec = o["judge"]
        if ":" not in spec and spec != "constitutional":
            return selectors.judge_get(name=spec)
        settings: dict = {}
        if spec == "constitutional":
            settings = {"principles_per_label": o["principles_per_label"],
                        "chain_of_thought": o["cot"], "seed": o["judge_seed"]}
        elif o["temperature"] is not None:
            settings = {"temperature": o["temperature"]}
        model = generation_selectors.model_version_get(name=o["model"]) if o["model"] else None
        return judges.judge_from_spec(spec=spec, model_version=model, settings=settings,
                                      constitution_version=constitution_arg(o["constitution"]))


def constitution_arg(value: str):
    """``NAME`` (latest version) or ``NAME@NUMBER``; empty: the default constitution."""
    if not value:
        return None
    name, _, number = value.partition("@")
    return selectors.constitution_version_get(name=name, number=int(number) if number else None)


def wait(command: BaseCommand, job: FeedbackJob) -> FeedbackJob:
    while job.status not in FeedbackJob.TERMINAL:
        time.sleep(2)
        job.refresh_from_db()
        command.stdout.write(f"  {job.status}: {job.done}/{job.total}")
    return job


def report(command: BaseCommand, job: FeedbackJob) -> None:
    job.refresh_from_db()
    counts = {"labelled": job.labelled, "routed_to_humans": job.routed, "skipped": job.skipped,
              "revisions": job.revisions, "engine_seconds": round(job.engine_seconds, 2)}
    command.stdout.write(f"job {job.pk} {job.status}: {json.dumps(counts)}")
    if job.status == FeedbackJob.Status.FAILED:
        raise CommandError(job.error)
