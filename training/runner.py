"""Run the Django-free trainer in a subprocess and stream its progress into the database.

A crash or an out-of-memory kill of the trainer cannot take the Celery worker down: the
worker only reads the child's stdout (``PREFLOOP_METRIC {json}`` lines), hands them to
the caller (which writes ``TrainingMetric`` rows), and polls for a cancel request.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

METRIC_PREFIX = "PREFLOOP_METRIC "
LOG_TAIL_LINES = 60
PR_SET_PDEATHSIG = 1
CANCEL_POLL_S = 2.0


@dataclass
class TrainerOutcome:
    returncode: int
    cancelled: bool
    log_tail: str


def trainer_command(*, config_path: Path, resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "training.core.train", "--config", str(config_path)]
    return [*cmd, "--resume"] if resume else cmd


def trainer_run(
    *,
    config: dict,
    run_dir: Path,
    resume: bool,
    on_metric: Callable[[dict], None],
    should_cancel: Callable[[], bool],
) -> TrainerOutcome:
    """Start the trainer, feed each metric record to ``on_metric``, return how it ended.

    Reads the child's output in this thread (no helper threads, so database access stays
    on the caller's connection) and checks ``should_cancel`` every ``CANCEL_POLL_S``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cancelled = False
    with open(run_dir / "trainer.log", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            trainer_command(config_path=config_path, resume=resume),
            cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=_trainer_preexec,
        )  # fmt: skip
        try:
            for line in _lines(proc, should_cancel):
                if line is None:  # cancel requested
                    cancelled = True
                    os.killpg(proc.pid, signal.SIGTERM)
                    continue
                log.write(line + "\n")
                tail.append(line)
                if line.startswith(METRIC_PREFIX):
                    on_metric(json.loads(line[len(METRIC_PREFIX) :]))
        except BaseException:
            # The caller failed (e.g. the database went away while recording a metric):
            # stop the trainer, so that a retry never runs next to it in the same folder.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        proc.wait()
    return TrainerOutcome(proc.returncode, cancelled, "\n".join(tail))


def _lines(proc: subprocess.Popen, should_cancel: Callable[[], bool]) -> Iterator[str | None]:
    """Decoded output lines until EOF; ``None`` once when ``should_cancel()`` turns true."""
    fd, buffer, asked, last_poll = proc.stdout.fileno(), b"", False, time.monotonic()
    while True:
        ready, _, _ = select.select([fd], [], [], CANCEL_POLL_S)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                yield raw.decode("utf-8", errors="replace")
        if not asked and time.monotonic() - last_poll >= CANCEL_POLL_S:
            last_poll = time.monotonic()
            if should_cancel():
                asked = True
                yield None
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


def _trainer_preexec() -> None:
    """In the child: own process group (for cancel), and die with the worker (SIGKILL)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
