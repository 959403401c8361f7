"""Long-running jobs survive a lost worker: heartbeats, and the reaper of orphaned jobs.

Generation jobs, AI-feedback jobs and training runs are tasks with ``acks_late``: when
the *pool child* running one dies, Celery redelivers it at once. When the *worker
process itself* dies (``kill -9``, out of memory, a machine lost), its unacknowledged
message only comes back after the broker's visibility timeout (hours, by design: it
must exceed the longest task), and a file-system broker never redelivers. The row
would say ``running`` all that time.

So a running job proves it is alive: :func:`heartbeat` touches ``heartbeat_at`` every
``PREFLOOP_JOB_HEARTBEAT_S`` from a small thread with its own connection, for as long
as the job's code runs. :func:`orphans_recover` (run when a worker starts and
periodically from beat, ``prefloop.tasks.jobs_stale_check``) finds running jobs whose
worker is gone (a process on this host that no longer exists, or no heartbeat for
``PREFLOOP_JOB_STALE_S``) and puts each back in its queue: the task is idempotent and
resumes after the last stored batch or checkpoint. A job started
``PREFLOOP_JOB_MAX_ATTEMPTS`` times fails instead, with the reason. If the old message
is redelivered later, the job is finished by then and the task returns at once.

Each app describes its job model with a :class:`JobKind` (``generation.recovery``,
``training.recovery``); the models share the field names used here.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# Where the job kinds live (imported lazily: prefloop loads before the apps).
KIND_MODULES = ("generation.recovery", "training.recovery")


@dataclass(frozen=True)
class JobKind:
    """A job model with ``status``, ``worker``, ``heartbeat_at``, ``attempts``, ``error``,
    ``celery_task_id``, ``started_at`` and ``finished_at`` fields."""

    model: type[models.Model]
    running: str
    waiting: str  # the status of a job back in its queue (pending / queued)
    failed: str
    enqueue: Callable[[int, str], None]  # (primary key, task id): sends after commit


@dataclass(frozen=True)
class Recovered:
    kind: str
    pk: int
    action: str  # "requeued" or "failed"
    reason: str


def worker_id() -> str:
    """How a job row names the process running it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def heartbeat(model: type[models.Model], pk: int) -> Iterator[None]:
    """Touch ``heartbeat_at`` of row ``pk`` every few seconds while the block runs.

    The caller sets the first one when it claims the row. A failed touch (the database
    blinked) is logged and tried again at the next beat; a touch that lands after the
    block ended is harmless (only running jobs are judged by their heartbeat).
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


def process_gone(worker: str) -> bool:
    """True when ``worker`` ("host:pid") names a process of this host that no longer runs."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def attempts_exhausted(attempts: int) -> str:
    """Why a job started ``attempts`` times must not start again ("" when it may)."""
    if attempts < settings.PREFLOOP_JOB_MAX_ATTEMPTS:
        return ""
    return (f"it was started {attempts} times without finishing (its worker was lost, or "
            "it kept failing), so it is failed rather than started again; the work stored "
            "so far is kept")  # fmt: skip


def orphan_reason(*, worker: str, last_sign: datetime | None, now: datetime) -> str:
    """Why a running job counts as orphaned ("" when it does not)."""
    if worker and process_gone(worker):
        return f"its worker process {worker} is gone"
    stale = timedelta(seconds=settings.PREFLOOP_JOB_STALE_S)
    if last_sign is not None and now - last_sign > stale:
        return f"no heartbeat from {worker or 'its worker'} since {last_sign:%Y-%m-%d %H:%M:%S}"
    return ""


def kinds() -> list[JobKind]:
    return [kind for name in KIND_MODULES for kind in import_module(name).JOB_KINDS]


def orphans_recover(*, now: datetime | None = None) -> list[Recovered]:
    """Requeue (or fail, past the attempt limit) every running job whose worker is gone.

    Only jobs that run as tasks of their own: a job without a Celery task id runs inside
    something else (a round's step, a management command run in place), which owns its
    resumption (``run_round --resume``), so a second executor must not be started.
    """
    now = now or timezone.now()
    out: list[Recovered] = []
    for kind in kinds():
        running = kind.model.objects.filter(status=kind.running).exclude(celery_task_id="")
        ids = running.values_list("pk", flat=True)
        for pk in list(ids):
            recovered = _recover_one(kind, pk, now)
            if recovered is not None:
                logger.warning("%s %s %s: %s", recovered.kind, pk, recovered.action,
                               recovered.reason)  # fmt: skip
                out.append(recovered)
    return out


@transaction.atomic
def _recover_one(kind: JobKind, pk: int, now: datetime) -> Recovered | None:
    rows = kind.model.objects.select_for_update(skip_locked=True)
    job = rows.filter(pk=pk, status=kind.running).exclude(celery_task_id="").first()
    if job is None:
        return None
    why = orphan_reason(worker=job.worker, last_sign=job.heartbeat_at or job.started_at, now=now)
    if not why:
        return None
    label = str(kind.model._meta.verbose_name)
    exhausted = attempts_exhausted(job.attempts)
    if exhausted:
        job.status, job.error, job.finished_at = kind.failed, f"{why}; {exhausted}", now
        job.save(update_fields=["status", "error", "finished_at"])
        return Recovered(label, pk, "failed", job.error)
    job.status, job.celery_task_id = kind.waiting, str(uuid.uuid4())
    job.error = f"{why}; requeued at {now:%Y-%m-%d %H:%M:%S} to resume"
    job.save(update_fields=["status", "celery_task_id", "error"])
    kind.enqueue(pk, job.celery_task_id)  # sent after commit
    return Recovered(label, pk, "requeued", job.error)
