"""Reads for training runs."""

from __future__ import annotations

from django.db.models import QuerySet

from annotation.models import Project
from prefloop.exceptions import NotFoundError
from training.models import TrainingMetric, TrainingRun


def training_run_list(*, project: Project) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.filter(project=project).select_related(
        "snapshot", "policy", "reference", "output_version"
    )


def training_run_get(*, project: Project, run_id: int) -> TrainingRun:
    run = training_run_list(project=project).filter(pk=run_id).first()
    if run is None:
        raise NotFoundError(f"no training run {run_id} in {project.slug}")
    return run


def training_metric_series(*, run: TrainingRun, kind: str = "train") -> list[dict]:
    return list(TrainingMetric.objects.filter(run=run, kind=kind).values_list("values", flat=True))
