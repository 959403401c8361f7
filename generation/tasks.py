"""Celery tasks of the generation app: thin wrappers around ``generation.jobs``.

Generation runs on the ``gpu`` queue, served by a dedicated worker started with
``--pool=solo`` (or ``threads``) and prefetch 1: the engine lives in the worker
process between tasks and its child processes must not be those of a daemonic
prefork child. The worker shuts the engine down when it stops (SIGTERM).
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings
from django.db import IntegrityError, OperationalError

from generation import backends, jobs
from prefloop.celery import TransientError, house_task

logger = logging.getLogger(__name__)


@house_task(queue="gpu", time_limit=settings.CELERY_TASK_TIME_LIMIT)
def generation_job_execute(*, job_id: int) -> str:
    """Run (or resume) generation job ``job_id``; returns its final status."""
    try:
        return jobs.generation_job_run(job_id=job_id).status
    except SoftTimeLimitExceeded:
        return jobs.generation_job_fail(
            job_id=job_id, reason="the job ran past the task time limit; start it again to resume"
        ).status
    except TransientError:
        raise
    except (IntegrityError, OperationalError) as exc:
        # Another worker stored the same sample first, or the database blinked: retry;
        # the run resumes after the last stored batch.
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 the edge records any failure, then re-raises
        jobs.generation_job_fail(job_id=job_id, reason=f"internal error: {exc!r}")
        raise


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_engine(**_kwargs) -> None:
    """Stop the engine's child processes with the worker (they outlive SIGKILL only)."""
    backends.close_backend()
