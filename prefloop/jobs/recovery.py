"""Who runs a job, whether that worker is still alive, and the reaper of orphaned jobs.

Tasks run with ``acks_late``: when the *pool child* running a job dies, Celery delivers
it again at once. When the *worker process itself* dies (``kill -9``, out of memory, a
machine lost), its unacknowledged message comes back only after the broker's visibility
timeout (hours, by design), and the file-system broker never redelivers it. So a running
job proves it is alive through its heartbeat (``lifecycle.heartbeat``), and
:func:`orphans_recover` (when a worker starts, and from beat: ``prefloop.tasks``) puts a
running job whose worker is gone back in its queue, or fails it past the attempt limit.

Every concrete subclass of :class:`~prefloop.jobs.models.Job` is a job kind: nothing
registers them.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from prefloop.jobs.models import Job, JobStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    kind: str
    pk: int
    action: str  # "requeued" or "failed"
    reason: str


def worker_id() -> str:
    """How a job row names the process running it."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
    return (
        f"it was started {attempts} times without finishing (its worker was lost, or "
        "it kept failing), so it is failed rather than started again; the work stored "
        "so far is kept"
    )


def orphan_reason(*, worker: str, last_sign: datetime | None, now: datetime) -> str:
    """Why a running job counts as orphaned ("" when it does not)."""
    if worker and process_gone(worker):
        return f"its worker process {worker} is gone"
    stale = timedelta(seconds=settings.PREFLOOP_JOB_STALE_S)
    if last_sign is not None and now - last_sign > stale:
        return f"no heartbeat from {worker or 'its worker'} since {last_sign:%Y-%m-%d %H:%M:%S}"
    return ""


def job_models() -> list[type[Job]]:
    """Every concrete job model of the installed apps."""
    return [model for model in apps.get_models() if issubclass(model, Job)]


def orphans_recover(*, now: datetime | None = None) -> list[Recovered]:
    """Requeue (or fail, past the attempt limit) every running job whose worker is gone.

    Only jobs that run as tasks of their own: a job without a Celery task id runs inside
    something else (a round's step, a management command run in place), which owns its
    resumption, so a second executor must not be started.
    """
    now = now or timezone.now()
    out: list[Recovered] = []
    for model in job_models():
        running = model.objects.filter(status=JobStatus.RUNNING).exclude(celery_task_id="")
        for pk in list(running.values_list("pk", flat=True)):
            recovered = _recover_one(model, pk, now)
            if recovered is not None:
                logger.warning(
                    "%s %s %s: %s", recovered.kind, pk, recovered.action, recovered.reason
                )
                out.append(recovered)
    return out


@transaction.atomic
def _recover_one(model: type[Job], pk: int, now: datetime) -> Recovered | None:
    from prefloop.jobs.lifecycle import enqueue  # lifecycle imports this module

    rows = model.objects.select_for_update(skip_locked=True)
    job = rows.filter(pk=pk, status=JobStatus.RUNNING).exclude(celery_task_id="").first()
    if job is None:
        return None
    why = orphan_reason(worker=job.worker, last_sign=job.heartbeat_at or job.started_at, now=now)
    if not why:
        return None
    label = str(model._meta.verbose_name)
    exhausted = attempts_exhausted(job.attempts)
    if exhausted:
        job.status, job.error, job.finished_at = JobStatus.FAILED, f"{why}; {exhausted}", now
        job.save(update_fields=["status", "error", "finished_at"])
        return Recovered(label, pk, "failed", job.error)
    job.status, job.worker = JobStatus.PENDING, ""
    job.error = f"{why}; requeued at {now:%Y-%m-%d %H:%M:%S} to resume"
    job.save(update_fields=["status", "worker", "error"])
    enqueue(job)  # a new task id; sent after commit
    return Recovered(label, pk, "requeued", job.error)
