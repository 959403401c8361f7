"""Celery tasks of rounds: one thin task per step, each on the queue its work needs.

The chain is built one link at a time: when a step ends, ``services`` enqueues the next
step's task after commit. The round row, not the broker message, says where the round
stands, so a chain cut by a killed worker or a restarted machine continues from the
round's ``step`` (``round_resume``) and a re-delivered task for a step already done
returns at once.

Periodic (Celery beat, see ``BEAT_SCHEDULE`` and docs/rounds.md): ``rounds_waiting_check``
re-checks rounds waiting for human labels, ``rounds_autostart_check`` starts a round
where enough new human judgments arrived.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, OperationalError

from prefloop.celery import TransientError, house_task
from prefloop.exceptions import ConflictError
from training.rounds import autostart, services

logger = logging.getLogger(__name__)
LIMIT = settings.CELERY_TASK_TIME_LIMIT

BEAT_SCHEDULE = {
    "rounds-waiting-check": {
        "task": "training.rounds.tasks.rounds_waiting_check",
        "schedule": 60.0,
        "options": {"queue": "default"},
    },
    "rounds-autostart-check": {
        "task": "training.rounds.tasks.rounds_autostart_check",
        "schedule": 60.0,
        "options": {"queue": "default"},
    },
}


def _step(round_id: int, step: str) -> str:
    """Run one step; domain failures are recorded by the service, others here."""
    try:
        return services.round_advance(round_id=round_id, step=step).status
    except SoftTimeLimitExceeded:
        reason = f"step {step} ran past the task time limit; resume the round to continue"
        return services.round_fail(round_id=round_id, reason=reason).status
    except TransientError:
        raise
    except (IntegrityError, OperationalError, ConflictError) as exc:
        # A race with another writer, or the database blinked: the step's work is
        # stored batch by batch, so running it again continues where it stopped.
        raise TransientError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 the edge records any failure, then re-raises
        services.round_fail(round_id=round_id, reason=f"internal error in {step}: {exc!r}")
        raise


@house_task(queue="gpu", time_limit=LIMIT)
def round_generate(*, round_id: int) -> str:
    return _step(round_id, "generate")


@house_task(queue="gpu", time_limit=LIMIT)
def round_label(*, round_id: int) -> str:
    return _step(round_id, "label")


@house_task(queue="default", time_limit=600)
def round_wait(*, round_id: int) -> str:
    return _step(round_id, "wait")


@house_task(queue="default", time_limit=1800)
def round_export(*, round_id: int) -> str:
    return _step(round_id, "export")


@house_task(queue="train", time_limit=LIMIT, max_retries=2)
def round_train(*, round_id: int) -> str:
    return _step(round_id, "train")


@house_task(queue="gpu", time_limit=LIMIT)
def round_evaluate(*, round_id: int) -> str:
    return _step(round_id, "evaluate")


@house_task(queue="default", time_limit=600)
def round_finish(*, round_id: int) -> str:
    return _step(round_id, "finish")


@house_task(queue="default", time_limit=600)
def rounds_waiting_check() -> list[int]:
    return [rnd.pk for rnd in services.rounds_waiting_check()]


@house_task(queue="default", time_limit=600)
def rounds_autostart_check() -> list[int]:
    return [rnd.pk for rnd in autostart.rounds_autostart_check()]


STEP_TASKS = {
    "generate": round_generate,
    "label": round_label,
    "wait": round_wait,
    "export": round_export,
    "train": round_train,
    "evaluate": round_evaluate,
    "finish": round_finish,
}
