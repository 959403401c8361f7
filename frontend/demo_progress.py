"""What ``make demo`` prints while it sets up: numbered stages, and for the model build
a progress bar with the step, the share done and an estimate of the time left.

The model builder reports lines like ``step 450/912 loss 1.234 …``; ``BuildProgress``
is the stream its command writes to, and turns those lines into the bar (other lines
pass through). On a terminal the bar redraws in place; elsewhere (a log file, CI) each
report is its own line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TextIO

STEP = re.compile(r"^step (\d+)/(\d+)\s*(.*)$")
LOSS = re.compile(r"loss ([0-9.]+)")
BAR_WIDTH = 30


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def bar_line(*, step: int, total: int, elapsed: float, detail: str = "") -> str:
    """``[######------] step 450/912  49%  ETA 2m 10s  loss 1.234``"""
    share = step / total if total else 1.0
    filled = round(BAR_WIDTH * share)
    eta = elapsed / step * (total - step) if step else None
    left = "done" if step >= total else (f"ETA {duration(eta)}" if eta is not None else "")
    loss = LOSS.search(detail)
    tail = f"  loss {loss.group(1)}" if loss else ""
    return (f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] step {step}/{total} "
            f"{share:4.0%}  {left}{tail}")


class BuildProgress:
    """A write-only stream for ``call_command(..., stdout=BuildProgress(sys.stdout))``."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.clock = out, clock
        self.started = clock()
        self.in_place = bool(getattr(out, "isatty", lambda: False)())
        self._bar_open = False

    def write(self, text: str) -> None:
        for line in text.splitlines():
            match = STEP.match(line.strip())
            if match:
                step, total = int(match.group(1)), int(match.group(2))
                bar = bar_line(step=step, total=total, elapsed=self.clock() - self.started,
                               detail=match.group(3))
                self._emit(bar, in_place=True)
            elif line.strip():
                self._emit(line, in_place=False)

    def _emit(self, line: str, *, in_place: bool) -> None:
        if self.in_place and in_place:
            self.out.write("\r  " + line)
            self._bar_open = True
        else:
            if self._bar_open:
                self.out.write("\n")
                self._bar_open = False
            self.out.write("  " + line + "\n")
        self.out.flush()

    def flush(self) -> None:
        self.out.flush()
