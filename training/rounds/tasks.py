"""Celery tasks of rounds: one thin task per step, each on the queue its work needs.

The chain is built one link at a time: when a step ends, ``services`` enqueues the next
step's task after commit. The round row, not the broker message, says where the round
stands. Each step is a job (``prefloop.jobs``) with a heartbeat, so a chain cut by a
killed worker is requeued by the lost-worker check and continues from the round's
``step``, and a re-delivered task for a step already done returns at once. The error
policy (time limit, retries, recording a failure) is ``house_task``'s.

Periodic (Celery beat, see ``BEAT_SCHEDULE`` and docs/rounds.md): ``rounds_waiting_check``
re-checks rounds waiting for human labels, ``rounds_autostart_check`` starts a round
where enough new human judgments arrived.
"""

from __future__ import annotations

from django.conf import settings

from prefloop.celery import JOB_RETRY_ON, house_task
from prefloop.exceptions import ConflictError
from training.rounds import autostart, services
from training.rounds.models import Round

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
    return services.round_advance(round_id=round_id, step=step).status


# ConflictError: a race with another writer; the step's work is stored batch by batch,
# so running it again continues where it stopped.
RETRY_ON = (*JOB_RETRY_ON, ConflictError)


@house_task(queue="gpu", time_limit=LIMIT, job=Round, retry_on=RETRY_ON)
def round_generate(*, round_id: int) -> str:
    return _step(round_id, "generate")


@house_task(queue="gpu", time_limit=LIMIT, job=Round, retry_on=RETRY_ON)
def round_label(*, round_id: int) -> str:
    return _step(round_id, "label")


@house_task(queue="default", time_limit=600, job=Round, retry_on=RETRY_ON)
def round_wait(*, round_id: int) -> str:
    return _step(round_id, "wait")


@house_task(queue="default", time_limit=1800, job=Round, retry_on=RETRY_ON)
def round_export(*, round_id: int) -> str:
    return _step(round_id, "export")


@house_task(queue="train", time_limit=LIMIT, job=Round, retry_on=RETRY_ON, max_retries=2)
def round_train(*, round_id: int) -> str:
    return _step(round_id, "train")


@house_task(queue="gpu", time_limit=LIMIT, job=Round, retry_on=RETRY_ON)
def round_evaluate(*, round_id: int) -> str:
    return _step(round_id, "evaluate")


@house_task(queue="default", time_limit=600, job=Round, retry_on=RETRY_ON)
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
