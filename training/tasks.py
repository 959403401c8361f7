"""Thin Celery wrappers for training (queue ``train``)."""

from __future__ import annotations

from django.conf import settings

from prefloop.celery import house_task
from training import services


@house_task(queue="train", time_limit=settings.CELERY_TASK_TIME_LIMIT, max_retries=2)
def training_run_execute(*, run_id: int) -> int | None:
    """Idempotent: a finished run returns at once; a re-delivered one resumes."""
    run = services.training_run_execute(run_id=run_id)
    return run.output_version_id if run is not None else None
