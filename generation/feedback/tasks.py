"""Celery task of AI feedback: a thin wrapper around ``generation.feedback.runner``.

Runs on the ``gpu`` queue (a worker with ``--pool=solo`` or ``threads`` and prefetch 1,
see ``generation.tasks``): the engine stays loaded between jobs, shared with
generation jobs through ``generation.backends.get_backend``.
"""

from __future__ import annotations

from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from generation.feedback import judges, runner
from generation.feedback.models import FeedbackJob
from prefloop.celery import JOB_RETRY_ON, house_task
from prefloop.exceptions import ConflictError

LIMIT = settings.CELERY_TASK_TIME_LIMIT


# ConflictError: a race with an annotator; the batch rolled back and is run again.
@house_task(queue="gpu", time_limit=LIMIT, job=FeedbackJob, retry_on=(*JOB_RETRY_ON, ConflictError))
def feedback_job_execute(*, job_id: int) -> str:
    """Run (or resume) feedback job ``job_id``; returns its final status."""
    return runner.feedback_job_run(job_id=job_id).status


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_reward_model(**_kwargs) -> None:
    judges.close_reward_model()
