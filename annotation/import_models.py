"""``ImportJob``: a large import written in the background, batch by batch.

Imported at the end of ``annotation/models.py`` so it belongs to the ``annotation`` app.
The lifecycle fields (status, attempts, heartbeat, …) are the shared ``prefloop.jobs.Job``.
"""

from __future__ import annotations

from django.db import models

from prefloop.jobs.models import Job


class ImportJob(Job):
    """An uploaded file validated in the request, then written by ``import_job_run``."""

    task_name = "annotation.tasks.import_job_run"

    project = models.ForeignKey(
        "annotation.Project", on_delete=models.CASCADE, related_name="import_jobs"
    )
    source_name = models.CharField(max_length=255, blank=True, help_text="The upload's name.")
    format = models.CharField(max_length=10)
    partial = models.BooleanField(default=False)
    path = models.CharField(max_length=500, help_text="The stored upload (server side).")
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    tasks_planned = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, help_text="The import report so far.")

    class Meta:
        ordering = ["-created_at"]
