"""Annotation tasks (thin: load by primary key, call a service)."""

from __future__ import annotations

from annotation.models import ImportJob, Project
from annotation.services import import_jobs, leaderboard
from prefloop.celery import house_task


@house_task(queue="default", time_limit=600)
def leaderboard_refresh(*, project_id: int, bootstrap: int, seed: int) -> str | None:
    """Bootstrap intervals for the project's current data version, into the cache."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    return leaderboard.leaderboard_refresh(project=project, bootstrap=bootstrap, seed=seed)


@house_task(queue="default", time_limit=6 * 3600, job=ImportJob)
def import_job_run(*, job_id: int) -> str:
    """Write a validated upload in batches (``annotation.services.import_jobs``)."""
    return import_jobs.import_job_run(job_id=job_id).status
