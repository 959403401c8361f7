"""Start a real Celery worker process against the test database, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """DATABASE_URL of the database this test process is using (the test database)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        user = s.get("USER") or "postgres"
        auth = f"{user}:{s['PASSWORD']}" if s.get("PASSWORD") else user
        host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{s['NAME']}"
    raise RuntimeError(f"unsupported database vendor {connection.vendor}")


@contextmanager
def celery_worker(
    *, broker_url: str = "", queues: str = "default,gpu,train", env: dict | None = None,
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``celery worker`` (solo pool) until the block exits; SIGTERM then wait.

    By default the worker listens on the broker this test process publishes to.
    """
    worker_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": broker_url or settings.CELERY_BROKER_URL,
        "PREFLOOP_BROKER_DIR": str(settings.CELERY_BROKER_FOLDER),
        "CELERY_RESULT_BACKEND": "django-db",
        **(env or {}),
    }
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    cmd = [sys.executable, "-m", "celery", "-A", "prefloop", "worker", "--pool=solo",
           "-Q", queues, "--loglevel=INFO", "--without-gossip", "--without-mingle",
           "--without-heartbeat", "-n", f"test-{os.getpid()}-{time.time_ns()}@%h"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            out.close()
