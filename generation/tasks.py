"""Celery tasks of the generation app: thin wrappers around ``generation.jobs``.

Generation runs on the ``gpu`` queue, served by a dedicated worker started with
``--pool=solo`` (or ``threads``) and prefetch 1: the engine lives in the worker
process between tasks and its child processes must not be those of a daemonic
prefork child. The worker shuts the engine down when it stops (SIGTERM).
"""

from __future__ import annotations

from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from generation import backends, jobs
from generation.models import GenerationJob
from prefloop.celery import house_task


@house_task(queue="gpu", time_limit=settings.CELERY_TASK_TIME_LIMIT, job=GenerationJob)
def generation_job_execute(*, job_id: int) -> str:
    """Run (or resume) generation job ``job_id``; returns its final status."""
    return jobs.generation_job_run(job_id=job_id).status


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_engine(**_kwargs) -> None:
    """Stop the engine's child processes with the worker (they outlive SIGKILL only)."""
    backends.close_backend()
