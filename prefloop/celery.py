"""The Celery app and the one house task decorator.

Every task in Prefloop is declared with :func:`house_task` (never bare
``shared_task``; ruff bans it). The decorator fixes the contract that the rest of
the code relies on:

* ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered
  again, so every task body must be idempotent (load by primary key, lock the row,
  return early when the work is already done).
* explicit retryable errors with bounded exponential backoff; anything else fails
  the task at once, with its reason recorded by the service that owns the job.
* soft/hard time limits per task (soft = 0.9 x hard), always below the broker's
  visibility timeout (settings.CELERY_BROKER_TRANSPORT_OPTIONS).
* a queue: ``default`` (web-side chores), ``gpu`` (generation, AI feedback) or
  ``train`` (training runs).

Services enqueue with :func:`enqueue_on_commit`: when the broker cannot take the
message, the job is marked failed with the reason and the caller gets
``QueueUnavailableError`` (HTTP 503), so no job waits for a message that was never sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery, shared_task  # noqa: TID251 the one allowed use
from django.db import transaction
from kombu import Queue
from kombu.exceptions import OperationalError as BrokerError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")

app = Celery("prefloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "gpu", "train")]
app.autodiscover_tasks()
app.conf.imports = ("prefloop.tasks",)

QUEUES = ("default", "gpu", "train")
logger = logging.getLogger(__name__)


class TransientError(Exception):
    """Raise (or subclass) for failures worth retrying: a lock held, a service down."""


def house_task(
    *,
    queue: str = "default",
    time_limit: int = 300,
    retry_on: tuple[type[BaseException], ...] = (TransientError,),
    max_retries: int = 5,
    backoff_max: int = 300,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a Prefloop task; see the module docstring for the contract."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")

    def decorate(func: Callable[..., Any]) -> Any:
        return shared_task(
            func,
            name=f"{func.__module__}.{func.__name__}",
            queue=queue,
            acks_late=True,
            reject_on_worker_lost=True,
            time_limit=time_limit,
            soft_time_limit=int(0.9 * time_limit),
            autoretry_for=retry_on,
            max_retries=max_retries,
            retry_backoff=True,
            retry_backoff_max=backoff_max,
            retry_jitter=True,
        )

    return decorate


def enqueue_on_commit(
    task: Any, *, kwargs: dict, task_id: str, on_failure: Callable[[str], object]
) -> None:
    """Send ``task`` once the current transaction commits (at once outside one).

    If the broker cannot take it (within the short publish retry policy of the
    settings), ``on_failure(reason)`` records it on the job and ``QueueUnavailableError``
    is raised to the caller: enqueueing never fails silently.
    """
    from prefloop.exceptions import QUEUE_DOWN, QueueUnavailableError  # needs settings

    def send() -> None:
        try:
            task.apply_async(kwargs=kwargs, task_id=task_id)
        except (BrokerError, OSError) as exc:
            reason = f"task queue unavailable: {exc}"
            logger.error("could not enqueue %s %s: %s", task.name, kwargs, exc)
            on_failure(reason)
            raise QueueUnavailableError(QUEUE_DOWN.format(error=exc)) from exc

    transaction.on_commit(send)
