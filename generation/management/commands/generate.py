"""Start a generation job: sample candidates for a project's prompts and pair them.

    python manage.py generate --project demo --model demo-base --n 4 --temperature 1 --wait

By default the job goes to the ``gpu`` queue for a worker; ``--here`` runs it in this
process instead (no worker needed), with the backend that GENERATION_BACKEND names.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation import jobs, selectors, services
from generation.models import GenerationJob
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Generate candidate responses for a project's prompts with a model version."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--model", required=True, help="Model version name.")
        parser.add_argument("--versus", default="", help="Opponent version (head_to_head).")
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--split", choices=["", "train", "eval"], default="")
        parser.add_argument("--lacking", action="store_true", help="Prompts with < 2 responses.")
        parser.add_argument("--n", type=int, default=2)
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument("--top-p", type=float, default=1.0)
        parser.add_argument("--max-tokens", type=int, default=64)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--pairing", choices=GenerationJob.Pairing.values, default=None)
        parser.add_argument("--judge", default="")
        parser.add_argument("--batch-size", type=int, default=256)
        parser.add_argument("--here", action="store_true", help="Run in this process.")
        parser.add_argument("--wait", action="store_true", help="Print progress until done.")

    def handle(self, *args, **o) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        pairing = o["pairing"] or ("head_to_head" if o["versus"] else "random")
        sampling = {
            "n": o["n"],
            "temperature": o["temperature"],
            "top_p": o["top_p"],
            "max_tokens": o["max_tokens"],
            "seed": o["seed"],
        }
        try:
            job = services.generation_job_create(
                project=project,
                model_version=selectors.model_version_get(name=o["model"], project=project),
                opponent_version=(
                    selectors.model_version_get(name=o["versus"], project=project)
                    if o["versus"] else None
                ),
                sampling=sampling,
                pairing_name=pairing,
                tags=o["tags"],
                split=o["split"],
                lacking_candidates=o["lacking"],
                batch_size=o["batch_size"],
                judge=o["judge"],
                enqueue=not o["here"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"generation job {job.pk}: {job.total} prompt generations, {pairing}")
        if o["here"]:
            job = jobs.generation_job_run(job_id=job.pk)
        elif o["wait"]:
            job = self._wait(job)
        self._report(job)

    def _wait(self, job: GenerationJob) -> GenerationJob:
        while job.status not in GenerationJob.TERMINAL:
            time.sleep(2)
            job.refresh_from_db()
            p = selectors.generation_job_progress(job=job)
            self.stdout.write(
                f"  {job.status} {p['done']}/{p['total']} "
                f"{p['tokens_per_second']} tok/s eta {p['eta_seconds']} s"
            )
        return job

    def _report(self, job: GenerationJob) -> None:
        job.refresh_from_db()
        line = (
            f"job {job.pk} {job.status}: {job.responses_created} responses, "
            f"{job.tasks_created} tasks"
        )
        if job.status == GenerationJob.Status.FAILED:
            raise CommandError(f"{line}; {job.error}")
        self.stdout.write(self.style.SUCCESS(line))
