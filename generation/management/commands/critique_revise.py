"""Self-critique and revision (CAI's supervised phase) of a project's responses.

    python manage.py critique_revise --project demo --model demo-base --rounds 2 --here
    python manage.py critique_revise --project demo --model demo-base --outcome sft --tag hard

Each response is critiqued and revised ``--rounds`` times under freshly sampled
principles; the final revision becomes a (revision vs original) comparison with an AI
verdict for the revision, or, with ``--outcome sft``, a supervised example only.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from generation import selectors as generation_selectors
from generation.feedback import runner
from generation.feedback.services import jobs
from generation.management.commands.ai_feedback import constitution_arg, report, wait
from prefloop.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Critique and revise responses against a constitution (CAI, supervised phase)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--model", required=True, help="Model version that critiques.")
        parser.add_argument("--constitution", default="", help="NAME or NAME@VERSION.")
        parser.add_argument("--rounds", type=int, default=1)
        parser.add_argument("--outcome", choices=["comparison", "sft"], default="comparison")
        parser.add_argument("--temperature", type=float, default=1.0)
        parser.add_argument("--max-tokens", type=int, default=48)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--split", choices=["", "train", "eval"], default="")
        parser.add_argument("--response", type=int, action="append", dest="response_ids")
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--here", action="store_true", help="Run in this process.")
        parser.add_argument("--wait", action="store_true", help="Print progress until done.")

    def handle(self, *args, **o) -> None:
        project = Project.objects.filter(slug=o["project"]).first()
        if project is None:
            raise CommandError(f"no project {o['project']!r}")
        try:
            job = jobs.critique_job_create(
                project=project, model_version=generation_selectors.model_version_get(
                    name=o["model"], project=project),
                constitution_version=constitution_arg(o["constitution"]), rounds=o["rounds"],
                outcome=o["outcome"], sampling={"temperature": o["temperature"],
                                                "max_tokens": o["max_tokens"]},
                tags=o["tags"], split=o["split"], response_ids=o["response_ids"],
                limit=o["limit"], seed=o["seed"], batch_size=o["batch_size"],
                enqueue=not o["here"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"critique job {job.pk}: {job.total} responses, {o['rounds']} round(s), "
            f"constitution {job.constitution_version}, seed {job.seed}"
        )
        if o["here"]:
            job = runner.feedback_job_run(job_id=job.pk)
        elif o["wait"]:
            job = wait(self, job)
        report(self, job)
