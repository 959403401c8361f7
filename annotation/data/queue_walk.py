"""The annotator's walk of the next-task queue, started past what they already passed.

Every task an annotator judged stays open until others judge it too, and it sits in
the queue in front of them (fewest slots left first). Walking from the head, a lone
annotator on an overlap-2 project passed their whole history on every call. So each
lease records where the walk may start next time (``Assignment.walk_from``): per tier
of the queue (slots left = 1, 2, …), the position ``(queue_key, id)`` before which
every row was unacceptable to this annotator. The next walk runs one index range scan
per tier from there (``UNION ALL`` of ``LIMIT 1`` branches; the first tier with a row
wins, later branches never run) and costs the same at 100 or 50,000 past judgments.

Why skipping is safe:

- A position only moves forward over rows the walk passed, and never past the oldest
  live lease of the project (less a margin): a row that was only *temporarily*
  unacceptable (its free slots leased by others) has ``queue_key`` at or after its
  lease time, so it stays in front of the cursor and is seen again when the lease
  lapses or is skipped.
- A row that moves (leased, judged, given more overlap) gets ``queue_key`` = now, the
  back of its new tier, after every cursor.
- The cursor is a hint, never a filter of the guarantees: every branch applies the full
  per-annotator filter (slots, leases, own responses), and when the walk from the
  cursor finds nothing the caller walks the whole queue from the head and starts a
  fresh cursor, so nobody is told "nothing left" while a task is open to them.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from annotation.data import lease_sql
from annotation.models import Project, Task
from prefloop import rawsql

Position = tuple[int, int]  # (queue_key, task id)
START: Position = (-1, 0)
MAX_TIERS = 8
# Rows moved by transactions that started up to this long before ours stay in front.
MARGIN_US = 1_000_000


def tiers_for(project: Project) -> int:
    """Tiers with a cursor of their own; tasks with more slots left share the last walk."""
    return max(1, min(max(project.overlap, project.max_overlap), MAX_TIERS))


def cursor_parse(text: str | None, *, tiers: int) -> list[Position]:
    """``"q:id;q:id;…"`` (tier 1 first) to positions; anything unreadable is the start."""
    out: list[Position] = []
    for part in (text or "").split(";")[:tiers]:
        key, _, task_id = part.partition(":")
        try:
            out.append((int(key), int(task_id)))
        except ValueError:
            out.append(START)
    return out + [START] * (tiers - len(out))


def cursor_format(cursor: list[Position]) -> str:
    return ";".join(f"{key}:{task_id}" for key, task_id in cursor)


def time_key(moment: datetime) -> int:
    """A queue position in time: microseconds since the epoch (as ``queue_key``)."""
    return int(moment.timestamp() * 1_000_000)


def cursor_advance(
    *, walked_from: list[Position], task: Task, bound_us: int
) -> list[Position]:
    """Where the next walk may start, given that this walk found ``task``.

    Tiers before the task's were passed to their end, its own tier up to the task; no
    position moves past ``bound_us`` (the oldest live lease, see the module docstring).
    """
    tier, found = task.overlap_wanted - task.done_count, (task.queue_key, task.pk)
    bound = (bound_us, 0)
    out = []
    for number, old in enumerate(walked_from, start=1):
        if number < tier:
            out.append(max(old, bound))
        elif number == tier:
            out.append(max(old, min(found, bound)))
        else:
            out.append(old)
    return out


def _branch(where: str, number: int, lock: str) -> str:
    tier = "(t.overlap_wanted - t.done_count)"
    return (
        f"SELECT * FROM ({lease_sql.SELECT}{where}  AND {tier} = %s"
        f" AND (t.queue_key, t.id) > (%s, %s)\nORDER BY t.queue_key, t.id LIMIT 1{lock}) w{number}"
    )


def walk_sql(*, cursor: list[Position], lock: str, **filters) -> tuple[str, list]:
    """One statement: a range scan of the queue index per tier from its cursor, then the
    tiers past the last cursor from their head; ``LIMIT 1`` stops at the first row."""
    where, params = lease_sql.candidate_filter(**filters)
    branches, values = [], []
    for number, (key, task_id) in enumerate(cursor, start=1):
        branches.append(_branch(where, number, lock))
        values += [*params, number, key, task_id]
    tier = "(t.overlap_wanted - t.done_count)"
    branches.append(
        f"SELECT * FROM ({lease_sql.SELECT}{where}  AND {tier} > %s\n"
        f"ORDER BY {tier}, t.queue_key, t.id LIMIT 1{lock}) w0"
    )
    values += [*params, len(cursor)]
    return "\nUNION ALL\n".join(branches) + "\nLIMIT 1", values


def candidate_lock_after(*, cursor: list[Position], **filters) -> Task | None:
    """Lock and return the first acceptable task past ``cursor`` (rows other transactions
    hold are skipped), or None; the caller then walks from the head."""
    lock = " FOR UPDATE OF t SKIP LOCKED" if connection.features.has_select_for_update else ""
    sql, params = walk_sql(cursor=cursor, lock=lock, **filters)
    with rawsql.cursor() as db:
        db.execute(sql, params)
        row = db.fetchone()
    return lease_sql.build(row) if row else None
