"""Celery task of AI feedback: a thin wrapper around ``generation.feedback.runner``.

Runs on the ``gpu`` queue (a worker with ``--pool=solo`` or ``threads`` and prefetch 1,
see ``generation.tasks``): the engine stays loaded between jobs, shared with
generation jobs through ``generation.backends.get_backend``.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import IntegrityError, OperationalError

from generation.feedback import judges, runner
from prefloop.celery import TransientError, house_task
from prefloop.exceptions import ConflictError

logger = logging.getLogger(__name__)


@house_task(queue="gpu", time_limit=settings.CELERY_TASK_TIME_LIMIT)
def feedback_job_execute(*, job_id: int) -> str:
    """Run (or resume) feedback job ``job_id``; returns its final status."""
    try:
        return runner.feedback_job_run(job_id=job_id).status
    except SoftTimeLimitExceeded:
        return runner.feedback_job_fail(
            job_id=job_id, reason="the job ran past the task time limit; retry it to resume"
        ).status
    except TransientError:
        raise
    except (IntegrityError, OperationalError, ConflictError) as exc:
        # A race with an annotator or another worker, or the database blinked: the
        # batch rolled back; retry, and the run resumes after the last stored batch.
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 the edge records any failure, then re-raises
        runner.feedback_job_fail(job_id=job_id, reason=f"internal error: {exc!r}")
        raise


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_reward_model(**_kwargs) -> None:
    judges.close_reward_model()
