"""The generation app's jobs for the orphan reaper (``prefloop.jobs``): a generation or
AI-feedback job whose worker was lost goes back to the ``gpu`` queue and resumes after
its last stored batch."""

from __future__ import annotations

from generation import services
from generation.feedback.models import FeedbackJob
from generation.feedback.services import jobs as feedback_jobs
from generation.models import GenerationJob
from prefloop.jobs import JobKind


def _generation_enqueue(pk: int, task_id: str) -> None:
    services.generation_job_enqueue(job_id=pk, task_id=task_id)


def _feedback_enqueue(pk: int, task_id: str) -> None:
    feedback_jobs.feedback_job_enqueue(job_id=pk, task_id=task_id)


JOB_KINDS = [
    JobKind(model=GenerationJob, running=GenerationJob.Status.RUNNING,
            waiting=GenerationJob.Status.PENDING, failed=GenerationJob.Status.FAILED,
            enqueue=_generation_enqueue),
    JobKind(model=FeedbackJob, running=FeedbackJob.Status.RUNNING,
            waiting=FeedbackJob.Status.PENDING, failed=FeedbackJob.Status.FAILED,
            enqueue=_feedback_enqueue),
]  # fmt: skip
