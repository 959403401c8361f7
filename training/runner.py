"""Run the Django-free trainer in a subprocess and stream its progress into the database.

A crash or an out-of-memory kill of the trainer cannot take the Celery worker down: the
worker only reads the child's stdout (``PREFLOOP_METRIC {json}`` lines), writes them to
``TrainingMetric`` rows, and polls ``cancel_requested`` between lines.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections

METRIC_PREFIX = "PREFLOOP_METRIC "
LOG_TAIL_LINES = 60


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
    """Start the trainer, feed each metric record to ``on_metric``, return how it ended."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(run_dir / "trainer.log", "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            trainer_command(config_path=config_path, resume=resume),
            cwd=settings.BASE_DIR, env=env, text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        cancelled = _CancelWatcher(proc, should_cancel)
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip("\n"))
            if line.startswith(METRIC_PREFIX):
                on_metric(json.loads(line[len(METRIC_PREFIX) :]))
        proc.wait()
        cancelled.set_done()
    return TrainerOutcome(proc.returncode, cancelled.fired, "\n".join(tail))


class _CancelWatcher:
    """Polls the cancel flag every few seconds; on cancel, SIGTERMs the trainer's group."""

    def __init__(self, proc: subprocess.Popen, should_cancel: Callable[[], bool]) -> None:
        self.fired = False
        self._done = threading.Event()
        self._proc, self._should_cancel = proc, should_cancel
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._done.wait(2.0):
                if self._should_cancel():
                    self.fired = True
                    os.killpg(self._proc.pid, signal.SIGTERM)
                    return
        finally:
            connections.close_all()  # this thread's own connection

    def set_done(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
