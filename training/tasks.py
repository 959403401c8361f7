"""Thin Celery wrappers for training (queue ``train``); the error policy is
``house_task``'s (``prefloop.celery``)."""

from __future__ import annotations

from django.conf import settings

from prefloop.celery import house_task
from training import services
from training.models import TrainingRun

LIMIT = settings.CELERY_TASK_TIME_LIMIT


@house_task(queue="train", time_limit=LIMIT, job=TrainingRun, max_retries=2)
def training_run_execute(*, run_id: int) -> str:
    """Idempotent: a finished run returns at once; a re-delivered one resumes."""
    return services.training_run_execute(run_id=run_id).status
