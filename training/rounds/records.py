"""Two small writes every step uses: attach the work it made, and merge metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from training.rounds.models import Round


def attach(rnd: Round, field: str, make: Callable[[], Any]) -> Any:
    """The object in ``rnd.<field>``; if missing, ``make()`` it and store it there in the
    same transaction, so a step run again finds the job it started instead of a twin."""
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=rnd.pk)
        existing = getattr(locked, field)
        if existing is not None:
            setattr(rnd, field, existing)
            return existing
        made = make()
        if made is not None:
            Round.objects.filter(pk=rnd.pk).update(**{field: made})
            setattr(rnd, field, made)
        return made


def metrics_merge(rnd: Round, values: dict) -> None:
    """Add ``values`` to the round's metrics under the row lock (no lost update)."""
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=rnd.pk)
        rnd.metrics = {**locked.metrics, **values}
        Round.objects.filter(pk=rnd.pk).update(metrics=rnd.metrics)
