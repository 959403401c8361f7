"""The abstract ``Job``: the lifecycle fields every long-running job shares.

Concrete jobs (``generation.GenerationJob``, ``generation.FeedbackJob``,
``training.TrainingRun``, ``training.Round``) inherit it and add their own inputs and
progress counters. ``prefloop.jobs.lifecycle`` is the only writer of these fields.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job(models.Model):
    """A unit of long-running work with a status, a worker, a heartbeat and attempts."""

    Status = JobStatus
    TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.PENDING)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker started it.")
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid running it.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it."
    )
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    #: The dotted name of the Celery task that runs the job (declared with
    #: ``house_task(job=...)``); its one keyword argument is the job's primary key.
    task_name = ""

    class Meta:
        abstract = True
