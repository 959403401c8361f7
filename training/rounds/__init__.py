"""Iterative rounds: each round's model generates the next round's candidates.

Layout (see docs/rounds.md): ``models`` (``Round``, imported by ``training.models``),
``config`` (validated settings), ``services`` (create, the step state machine, resume,
cancel, auto-start), ``steps`` (each step's body), ``labels`` and ``snapshot`` (labels
and training data of a round), ``evaluation`` (win rate, KL, length, accuracy),
``selectors``, ``tasks`` (one Celery task per step), ``apis`` / ``urls``, ``plot``,
``demo`` (the capitals demo loop).

This package is imported while Django loads models, so it only wires Celery beat here:
beat gets the two periodic checks of ``tasks.BEAT_SCHEDULE`` (the Celery app
autodiscovers ``tasks`` itself: ``prefloop.celery``).
"""

from __future__ import annotations

import importlib

from celery.signals import beat_init


@beat_init.connect(weak=False)
def _schedule_checks(sender=None, **_kwargs) -> None:
    """Add the periodic checks unless the operator configured entries of the same name."""
    tasks = importlib.import_module("training.rounds.tasks")
    scheduler = getattr(sender, "scheduler", None)
    if scheduler is None:
        return
    missing = {k: v for k, v in tasks.BEAT_SCHEDULE.items() if k not in scheduler.schedule}
    if missing:
        scheduler.merge_inplace(missing)
