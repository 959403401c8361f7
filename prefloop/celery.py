"""The Celery app and the one house task decorator.

Every task in Prefloop is declared with :func:`house_task` (never bare
``shared_task``; ruff bans it). The decorator fixes the contract that the rest of
the code relies on:

* ``acks_late`` + ``reject_on_worker_lost``: a task whose worker dies is delivered
  again, so every task body must be idempotent (load by primary key, lock the row,
  return early when the work is already done).
* the error policy, once: retryable errors (``retry_on``; for job tasks also the
  database blinking and races, see ``JOB_RETRY_ON``) are retried with bounded,
  jittered exponential backoff. For a task that runs a job (``job=TheModel``), the soft
  time limit, the last failed retry and any other error are recorded on the job as its
  failure (``prefloop.jobs.fail``); the error is then raised.
* soft/hard time limits per task (soft = 0.9 x hard), always below the broker's
  visibility timeout (settings.CELERY_BROKER_TRANSPORT_OPTIONS).
* a queue: ``default`` (web-side chores), ``gpu`` (generation, AI feedback) or
  ``train`` (training runs).

Services enqueue with :func:`enqueue_on_commit` (jobs with ``prefloop.jobs.enqueue``):
when the broker cannot take the message, the job is marked failed with the reason and
the caller gets ``QueueUnavailableError`` (HTTP 503), so no job waits for a message
that was never sent.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable
from importlib import import_module
from typing import Any

from celery import Celery, shared_task  # noqa: TID251 the one allowed use
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from kombu import Queue
from kombu.exceptions import OperationalError as BrokerError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prefloop.settings")

app = Celery("prefloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "gpu", "train")]
app.autodiscover_tasks()  # <app>.tasks of every installed app
app.autodiscover_tasks(["generation.feedback", "training.rounds"])  # tasks of sub-packages
app.conf.imports = ("prefloop.tasks",)

QUEUES = ("default", "gpu", "train")
logger = logging.getLogger(__name__)


class TransientError(Exception):
    """Raise (or subclass) for failures worth retrying: a lock held, a service down."""


# Errors a job's task retries: another writer won a race, or the database blinked.
# Each job stores its work batch by batch, so a retry continues where it stopped.
JOB_RETRY_ON: tuple[type[BaseException], ...] = (
    TransientError,
    IntegrityError,
    OperationalError,
    InterfaceError,
)
TIME_LIMIT = "the job ran past the task time limit ({seconds} s); start it again to resume"
_JOB_TASKS: dict[str, tuple[Any, str]] = {}  # task name -> (task, its primary-key argument)


def house_task(
    *,
    queue: str = "default",
    time_limit: int = 300,
    job: type | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    max_retries: int = 5,
    backoff_max: int = 300,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a Prefloop task; see the module docstring for the contract.

    ``job``: the ``prefloop.jobs.Job`` model the task runs; the task's one keyword
    argument is then that job's primary key, and failures are recorded on the job.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; expected one of {QUEUES}")
    retryable = retry_on or (JOB_RETRY_ON if job is not None else (TransientError,))

    def decorate(func: Callable[..., Any]) -> Any:
        name = f"{func.__module__}.{func.__name__}"

        @functools.wraps(func)
        def run(self, **kwargs: Any) -> Any:
            pk = next(iter(kwargs.values()), None)
            try:
                return func(**kwargs)
            except SoftTimeLimitExceeded:
                if job is None:
                    raise
                return _job_fail(job, pk, TIME_LIMIT.format(seconds=int(0.9 * time_limit)))
            except retryable as exc:
                if self.request.retries >= max_retries:
                    _job_fail(job, pk, f"gave up after {max_retries} retries: {exc!r}")
                    raise
                delay = get_exponential_backoff_interval(
                    factor=1, retries=self.request.retries, maximum=backoff_max, full_jitter=True
                )
                raise self.retry(exc=exc, countdown=delay, max_retries=max_retries) from exc
            except Exception as exc:  # noqa: BLE001 record any other failure, then raise
                _job_fail(job, pk, f"internal error: {exc!r}")
                raise

        run.__signature__ = _bound_signature(func)
        task = shared_task(
            run,
            bind=True,
            name=name,
            queue=queue,
            acks_late=True,
            reject_on_worker_lost=True,
            time_limit=time_limit,
            soft_time_limit=int(0.9 * time_limit),
            max_retries=max_retries,
        )
        if job is not None:
            _JOB_TASKS[name] = (task, next(iter(inspect.signature(func).parameters)))
        return task

    return decorate


def _bound_signature(func: Callable[..., Any]) -> inspect.Signature:
    """``func``'s signature with ``self`` first, so Celery checks the arguments as before."""
    sig = inspect.signature(func)
    me = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sig.replace(parameters=[me, *sig.parameters.values()])


def _job_fail(job: type | None, pk: Any, reason: str) -> str | None:
    """Record ``reason`` as the job's failure; its final status (None without a job)."""
    if job is None or pk is None:
        return None
    from prefloop.jobs import fail  # the job models load after this module

    return fail(job, pk, reason=reason).status


def job_task(name: str) -> tuple[Any, str]:
    """The task called ``name`` that runs a job, and its primary-key argument."""
    if name not in _JOB_TASKS:
        import_module(name.rpartition(".")[0])
    return _JOB_TASKS[name]


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
