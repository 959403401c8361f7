"""The one lifecycle of every job: claim, heartbeat, finish / fail, cancel, enqueue.

Every write locks the job's row (``select_for_update``) and leaves a finished job as it
is, so a late or duplicate call never changes an outcome. ``job_running`` strings them
together for a task's body; see ``prefloop.jobs`` for the contract.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from prefloop.jobs.models import Job, JobStatus
from prefloop.jobs.recovery import attempts_exhausted, orphan_reason, worker_id

logger = logging.getLogger(__name__)
END_FIELDS = ["status", "error", "finished_at"]


class Cancelled(Exception):
    """Raised in a job's body (``Running.stop_if_cancelled``): the job ends cancelled."""


def _locked(model: type[Job], pk: int, **where) -> Job | None:
    return model.objects.select_for_update().filter(pk=pk, **where).first()


def _held_elsewhere(job: Job) -> bool:
    """Running as its own task under another worker that is alive: a duplicate message
    must not start a second executor (a job without a task id belongs to its caller)."""
    if job.status != JobStatus.RUNNING or not job.celery_task_id:
        return False
    if job.worker in ("", worker_id()):
        return False
    last = job.heartbeat_at or job.started_at
    return not orphan_reason(worker=job.worker, last_sign=last, now=timezone.now())


@transaction.atomic
def claim(model: type[Job], pk: int, *, where: dict | None = None) -> Job | None:
    """Mark the job running in this worker and count the attempt; None when there is
    nothing to run here: no such row (or not matching ``where``), finished, cancel
    requested (it ends cancelled), attempts used up (it ends failed), or running under
    another live worker."""
    job = _locked(model, pk, **(where or {}))
    if job is None or job.status in model.TERMINAL or _held_elsewhere(job):
        return None
    now = timezone.now()
    if job.cancel_requested:
        _end(job, status=JobStatus.CANCELLED, error="", now=now)
        return None
    exhausted = attempts_exhausted(job.attempts)
    if exhausted:
        _end(job, status=JobStatus.FAILED, error=exhausted, now=now)
        return None
    job.status, job.attempts = JobStatus.RUNNING, job.attempts + 1
    job.started_at = job.started_at or now
    job.worker, job.heartbeat_at = worker_id(), now
    job.save(update_fields=["status", "attempts", "started_at", "worker", "heartbeat_at"])
    return job


def _end(job: Job, *, status: str, error: str, now, **fields) -> Job:
    job.status, job.error, job.finished_at = status, error, now
    for name, value in fields.items():
        setattr(job, name, value)
    job.save(update_fields=[*END_FIELDS, *fields])
    return job


@transaction.atomic
def finish(
    model: type[Job], pk: int, *, status: str = JobStatus.SUCCEEDED, error: str = "", **fields
) -> Job:
    """End the job with ``status`` (and ``fields``, saved with it); a finished job is
    returned unchanged."""
    job = _locked(model, pk)
    if job is None or job.status in model.TERMINAL:
        return job if job is not None else model.objects.get(pk=pk)
    return _end(job, status=status, error=error, now=timezone.now(), **fields)


def fail(model: type[Job], pk: int, *, reason: str) -> Job:
    """End the job as failed with ``reason`` (unless it has finished already)."""
    return finish(model, pk, status=JobStatus.FAILED, error=reason)


@transaction.atomic
def cancel(model: type[Job], pk: int, *, at_once: bool = False) -> Job:
    """Ask the job to stop. One not started yet (or any, ``at_once``) ends cancelled now;
    a running one stops at its next check. A finished job is returned unchanged."""
    job = _locked(model, pk)
    if job is None or job.status in model.TERMINAL:
        return job if job is not None else model.objects.get(pk=pk)
    job.cancel_requested = True
    if at_once or job.status != JobStatus.RUNNING:
        now, status = timezone.now(), JobStatus.CANCELLED
        return _end(job, status=status, error=job.error, now=now, cancel_requested=True)
    job.save(update_fields=["cancel_requested"])
    return job


def release(model: type[Job], pk: int) -> None:
    """Forget this worker on a job whose body stopped by an exception (a retry may run in
    another process of the same worker); it stays running until retried or reaped."""
    model.objects.filter(pk=pk, status=JobStatus.RUNNING, worker=worker_id()).update(worker="")


def enqueue(job: Job) -> None:
    """Send the job's task (``job.task_name``) after commit, under a new Celery task id.

    If the broker refuses it, the job fails with the reason and ``QueueUnavailableError``
    (HTTP 503) reaches the caller: no job waits for a message that was never sent.
    """
    from prefloop.celery import enqueue_on_commit, job_task  # the Celery app loads late

    task, argument = job_task(job.task_name)
    job.celery_task_id = str(uuid.uuid4())
    type(job).objects.filter(pk=job.pk).update(celery_task_id=job.celery_task_id)
    model, pk = type(job), job.pk
    enqueue_on_commit(
        task,
        kwargs={argument: pk},
        task_id=job.celery_task_id,
        on_failure=lambda reason: fail(model, pk, reason=reason),
    )


@contextmanager
def heartbeat(model: type[Job], pk: int) -> Iterator[None]:
    """Touch ``heartbeat_at`` of row ``pk`` every few seconds while the block runs.

    ``claim`` sets the first one. A failed touch (the database blinked) is logged and
    tried again at the next beat; a touch after the block ended is harmless (only
    running jobs are judged by their heartbeat).
    """
    every = settings.PREFLOOP_JOB_HEARTBEAT_S
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    model.objects.filter(pk=pk).update(heartbeat_at=timezone.now())
                except DatabaseError as exc:
                    logger.warning("heartbeat of %s %s failed: %s", model.__name__, pk, exc)
                    connections["default"].close()
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=beat, name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)


@dataclass
class Running:
    """The handle ``job_running`` yields: the job, and whether this worker claimed it."""

    model: type[Job]
    pk: int
    job: Job
    claimed: bool
    ended: bool = False

    def stop_if_cancelled(self) -> None:
        """Raise ``Cancelled`` when someone asked the job to stop (call between batches)."""
        if self.model.objects.filter(pk=self.pk, cancel_requested=True).exists():
            raise Cancelled

    def end(self, *, status: str, error: str = "", **fields) -> Job:
        """End the job from its body with another outcome than success (or extra fields)."""
        self.job = finish(self.model, self.pk, status=status, error=error, **fields)
        self.ended = True
        return self.job


@contextmanager
def job_running(
    model: type[Job], pk: int, *, failing_on: tuple[type[Exception], ...] = ()
) -> Iterator[Running]:
    """Claim the job, beat its heartbeat while the block runs, then finish it.

    Not claimed (``run.claimed`` False): the block should return ``run.job`` at once.
    The block ending normally finishes the job as succeeded (unless it called
    ``run.end``); ``Cancelled`` ends it cancelled; a ``failing_on`` error ends it failed
    with the error's message. Any other exception leaves it running for the task's error
    policy (``prefloop.celery.house_task``: retry, or record the failure).
    """
    job = claim(model, pk)
    if job is None:
        yield Running(model, pk, model.objects.get(pk=pk), claimed=False)
        return
    run = Running(model, pk, job, claimed=True)
    try:
        with heartbeat(model, pk):
            yield run
    except Cancelled:
        run.job = finish(model, pk, status=JobStatus.CANCELLED)
    except failing_on as exc:
        logger.warning("%s %s failed: %s", model._meta.verbose_name, pk, exc)
        run.job = fail(model, pk, reason=getattr(exc, "message", None) or str(exc))
    except BaseException:
        release(model, pk)
        raise
    else:
        if not run.ended:
            run.job = finish(model, pk)


def job_run(
    model: type[Job],
    pk: int,
    body: Callable[[Running], None],
    *,
    failing_on: tuple[type[Exception], ...] = (),
) -> Job:
    """Run ``body(run)`` inside ``job_running`` if this worker claims the job; the job's
    row as it ended (or as it was, when there was nothing to run)."""
    with job_running(model, pk, failing_on=failing_on) as run:
        if run.claimed:
            body(run)
    return run.job
