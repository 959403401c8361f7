"""Run the Django-free trainer in a subprocess and stream its progress into the database.

A crash or an out-of-memory kill of the trainer cannot take the Celery worker down: the
worker only reads the child's stdout (``PREFLOOP_METRIC {json}`` lines), hands them to
the caller (which writes ``TrainingMetric`` rows), and polls for a cancel request.

Several processes (:class:`Launch`): the child is ``python -m torch.distributed.run``
(torchrun), which starts one trainer per rank; only rank 0 prints metrics, and every rank
writes to the same pipe. Stopping a run stops every rank:

- cancel: SIGTERM to torchrun (it forwards it to the ranks, each in a session of its own),
  then SIGKILL to any process of the tree still alive after ``STOP_GRACE_S``;
- the worker dies (even by SIGKILL): torchrun gets SIGKILL (``PR_SET_PDEATHSIG``), and each
  rank, started with ``PREFLOOP_DIE_WITH_PARENT=1``, gets SIGKILL when torchrun goes
  (``training.core.distributed.die_with_parent``).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from django.conf import settings

logger = logging.getLogger(__name__)

METRIC_PREFIX = "PREFLOOP_METRIC "
LOG_TAIL_LINES = 60
PR_SET_PDEATHSIG = 1
CANCEL_POLL_S = 2.0
STOP_GRACE_S = 20.0


@dataclass(frozen=True)
class Launch:
    """How many trainer processes: ``processes`` per node, on ``nodes`` nodes. More than one
    node rendezvous at ``rdzv_endpoint`` (host:port) under ``rdzv_id``; the other nodes run
    :func:`trainer_command` themselves (docs/training.md)."""

    processes: int = 1
    nodes: int = 1
    rdzv_endpoint: str = ""
    rdzv_id: str = "prefloop"

    @property
    def distributed(self) -> bool:
        return self.processes * self.nodes > 1


@dataclass
class TrainerOutcome:
    returncode: int
    cancelled: bool
    log_tail: str


def trainer_command(*, config_path: Path, resume: bool, launch: Launch = Launch()) -> list[str]:
    cmd = [sys.executable]
    if launch.distributed:
        cmd += [
            "-m",
            "torch.distributed.run",
            f"--nnodes={launch.nodes}",
            f"--nproc-per-node={launch.processes}",
        ]
        if launch.nodes == 1:
            cmd.append("--standalone")  # a free local port: runs on one worker never collide
        else:
            cmd += [
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={launch.rdzv_endpoint}",
                f"--rdzv-id={launch.rdzv_id}",
            ]
    cmd += ["-m", "training.core.train", "--config", str(config_path)]
    return [*cmd, "--resume"] if resume else cmd


def trainer_run(
    *,
    config: dict,
    run_dir: Path,
    resume: bool,
    on_metric: Callable[[dict], None],
    should_cancel: Callable[[], bool],
    launch: Launch = Launch(),
) -> TrainerOutcome:
    """Start the trainer, feed each metric record to ``on_metric``, return how it ended.

    Reads the child's output in this thread (no helper threads, so database access stays
    on the caller's connection) and checks ``should_cancel`` every ``CANCEL_POLL_S``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFLOOP_DIE_WITH_PARENT": "1"}
    cmd = trainer_command(config_path=config_path, resume=resume, launch=launch)
    cancelled = False
    with open(run_dir / "trainer.log", "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(
            cmd,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_trainer_preexec,
        )
        try:
            for line in _lines(proc, should_cancel):
                if line is None:  # cancel requested
                    cancelled = True
                    stop_process_tree(proc, signal.SIGTERM)
                    continue
                log.write(line + "\n")
                tail.append(line)
                if line.startswith(METRIC_PREFIX):
                    _metric(line, on_metric)
        except BaseException:
            # The caller failed (e.g. the database went away while recording a metric):
            # stop the trainer, so that a retry never runs next to it in the same folder.
            stop_process_tree(proc, signal.SIGKILL)
            raise
        proc.wait()
    return TrainerOutcome(proc.returncode, cancelled, "\n".join(tail))


def _metric(line: str, on_metric: Callable[[dict], None]) -> None:
    try:
        record = json.loads(line[len(METRIC_PREFIX) :])
    except json.JSONDecodeError:  # a line cut by another rank's output: it stays in the log
        logger.warning("unreadable trainer metric line: %.200s", line)
        return
    on_metric(record)


def stop_process_tree(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the trainer's process group and wait for it; SIGKILL every process of its tree
    (torchrun's ranks run in sessions of their own) still alive after ``STOP_GRACE_S``."""
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_S if sig != signal.SIGKILL else 0)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_GRACE_S)


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
