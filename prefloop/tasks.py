"""Foundation tasks: a health check that proves a worker, its broker and the database work,
and the check for jobs orphaned by a lost worker (``prefloop.jobs``)."""

from __future__ import annotations

import logging
import os
import socket

from celery.signals import worker_ready
from django.db import connection, connections

from prefloop import jobs
from prefloop.celery import house_task

logger = logging.getLogger(__name__)


@house_task(queue="default", time_limit=60)
def worker_ping(*, token: str) -> dict:
    """Echo ``token`` with proof that the worker reached the database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        (one,) = cursor.fetchone()
    return {
        "token": token,
        "db_vendor": connection.vendor,
        "db_ok": one == 1,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }


@house_task(queue="default", time_limit=120)
def jobs_stale_check() -> list[str]:
    """Periodic (beat): requeue or fail running jobs whose worker is gone."""
    return [f"{r.kind} {r.pk} {r.action}" for r in jobs.orphans_recover()]


@worker_ready.connect(weak=False)
def _recover_orphans_at_start(**_kwargs) -> None:
    """A worker restarted after a crash puts the jobs its predecessor left back in queue."""
    try:
        jobs.orphans_recover()
    except Exception:  # noqa: BLE001 a worker must start even when this check cannot run
        logger.exception("the orphaned-job check at worker start failed")
    finally:
        connections.close_all()
