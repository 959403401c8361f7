"""Thin Celery wrappers for training (queue ``train``)."""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError

from prefloop.celery import TransientError, house_task
from training import services


@house_task(queue="train", time_limit=settings.CELERY_TASK_TIME_LIMIT, max_retries=2)
def training_run_execute(*, run_id: int) -> int | None:
    """Idempotent: a finished run returns at once; a re-delivered one resumes."""
    try:
        run = services.training_run_execute(run_id=run_id)
    except (OperationalError, InterfaceError) as exc:
        # The database blinked (the trainer was stopped): retry, resuming from the checkpoint.
        raise TransientError(str(exc)) from exc
    return run.output_version_id if run is not None else None
