"""Annotation tasks (thin: load by primary key, call a service)."""

from __future__ import annotations

from annotation.models import Project
from annotation.services import leaderboard
from prefloop.celery import house_task


@house_task(queue="default", time_limit=600)
def leaderboard_refresh(*, project_id: int, bootstrap: int, seed: int) -> str | None:
    """Bootstrap intervals for the project's current data version, into the cache."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    return leaderboard.leaderboard_refresh(project=project, bootstrap=bootstrap, seed=seed)
