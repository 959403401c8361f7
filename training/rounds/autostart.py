"""Rounds that start by themselves when enough new human judgments arrive.

``Project.auto_round_threshold`` says how many. The check runs after judgments are
stored: the periodic task ``rounds_autostart_check`` (Celery beat, every minute; see
docs/rounds.md) calls :func:`rounds_autostart_check`. The annotation app is not
touched: the check counts judgments, it does not hook into their submission.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from annotation.models import Judgment, Project
from training.rounds import services
from training.rounds.config import RoundSettings
from training.rounds.models import Round


def rounds_autostart_check() -> list[Round]:
    """Start a round in every project whose new human judgments reached its threshold.

    Call it after judgments are stored (the periodic task ``rounds_autostart_check``
    does, every minute). Only human verdicts count, so the AI labels a round makes
    never start another round.
    """
    started = []
    for project in Project.objects.filter(auto_round_threshold__isnull=False):
        rnd = _autostart(project)
        if rnd is not None:
            started.append(rnd)
    return started


@transaction.atomic
def _autostart(project: Project) -> Round | None:
    project = Project.objects.select_for_update().get(pk=project.pk)
    if Round.objects.filter(project=project).exclude(status__in=Round.TERMINAL).exists():
        return None
    template = Round.objects.filter(project=project).order_by("-index").first()
    if template is None or not project.auto_round_threshold:
        return None  # the first round is started by a person: it names the policy
    if new_human_judgments(project=project, since=_labels_frozen_at(template)) < (
        project.auto_round_threshold
    ):
        return None
    # Train on every label so far: the judgments that triggered the round are not on
    # candidates this round would generate.
    data = {**template.config, "rounds": 1, "samples": 0, "data_scope": "all"}
    return services.round_create(
        project=project, settings=RoundSettings.from_dict(data),
        created_by=template.created_by, auto_started=True,
    )


def new_human_judgments(*, project: Project, since) -> int:
    return Judgment.objects.filter(
        task__project=project, source=Judgment.Source.HUMAN, created_at__gt=since
    ).count()


def _labels_frozen_at(rnd: Round):
    frozen = (rnd.metrics.get("data") or {}).get("frozen_at")
    return datetime.fromisoformat(frozen) if frozen else rnd.created_at
