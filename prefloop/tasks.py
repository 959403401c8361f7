"""Foundation tasks: a health check that proves a worker, its broker and the database work."""

from __future__ import annotations

import os
import socket

from django.db import connection

from prefloop.celery import house_task


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
