"""Processes for the fault drills: a gunicorn server on the test database, free ports,
API clients with tokens, and waiting helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil
import requests
from rest_framework.authtoken.models import Token

from tests.support.worker import ROOT, test_database_url

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    predicate: Callable[[], T], *, timeout: float, what: str, log: Path | None = None
) -> T:
    """Poll ``predicate`` until it returns a truthy value (a generous safety deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def token_for(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def api(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


@contextmanager
def gunicorn(
    *, log_path: Path, workers: int = 3, database_url: str = "", env: dict | None = None
) -> Iterator[Server]:
    """Serve the app with gunicorn (sync workers) on a free port until the block exits."""
    port = free_port()
    server_env = {
        **os.environ,
        "DATABASE_URL": database_url or test_database_url(),
        "DJANGO_CONN_MAX_AGE": "60",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "gunicorn", "prefloop.wsgi:application",
           "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "sync",
           "--timeout", "60", "--graceful-timeout", "5", "--log-level", "info"]
    out = open(log_path, "wb")  # noqa: SIM115 closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        wait_for(lambda: server.up() and len(server.worker_pids()) == workers, timeout=120,
                 what="gunicorn to serve", log=log_path)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


class Server:
    def __init__(self, *, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        self.proc, self.url, self.log_path = proc, url, log_path

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log_path.read_text()[-4000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=5).status_code in (200, 503)
        except requests.RequestException:
            return False

    def worker_pids(self) -> list[int]:
        """The live worker processes (children of the master)."""
        return [p.pid for p in psutil.Process(self.proc.pid).children()
                if p.status() != psutil.STATUS_ZOMBIE]


@contextmanager
def celery_worker(
    *, log_path: Path, queues: str, pool: str = "solo", env: dict | None = None
) -> Iterator[subprocess.Popen]:
    """A Celery worker on the test database and the test process's broker (``solo`` or a
    one-child ``prefork`` pool); SIGTERM at the end unless the drill killed it already."""
    from django.conf import settings

    worker_env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PREFLOOP_BROKER_DIR": str(settings.CELERY_BROKER_FOLDER),
        "CELERY_RESULT_BACKEND": "django-db",
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "celery", "-A", "prefloop", "worker", f"--pool={pool}",
           "--concurrency=1", "-Q", queues, "--loglevel=INFO", "--without-gossip",
           "--without-mingle", "--without-heartbeat",
           "-n", f"drill-{os.getpid()}-{time.time_ns()}@%h"]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=worker_env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
