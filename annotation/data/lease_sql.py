"""Hand-written SQL for the annotator's hot path: find and lease the next task.

The ORM version of these statements cost more Python time to compile than the
database took to run them, and its ``ORDER BY`` could not use an index. Here:

- ``candidate_lock``: the first task this annotator may take from the head of the queue
  (``queue_walk`` starts the same walk past what they already passed), closest to completion
  first and least recently leased first, in the order of the partial index
  ``task_open_queue_v2`` (project, kind, slots left, queue_key, id; open tasks only),
  so the scan stops at the first acceptable row
  whatever the project size. Live leases are counted per row; on PostgreSQL the row
  is locked ``FOR UPDATE SKIP LOCKED``. The row comes back with the prompt and both
  responses, so the payload needs no further query.
- ``lease_insert_if_free``: insert the lease only if, in a *fresh* statement
  snapshot, finished verdicts plus live leases still leave a slot. Under READ
  COMMITTED a lease committed after the candidate statement began is invisible to
  it; this statement sees it (and we hold the task row lock, so no new lease can
  appear between this check and the insert).

Both run unchanged on SQLite (no row locks: IMMEDIATE transactions serialise writers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Prompt, Response, Task
from prefloop import rawsql
from prefloop.rawsql import RowReader, columns, when

_LEASED = Assignment.Status.LEASED
_PAYLOAD = RowReader(Task, Prompt, Response, Response)

SELECT = f"""SELECT {columns(Task, "t")}, {columns(Prompt, "p")},
  {columns(Response, "ra")}, {columns(Response, "rb")}
FROM annotation_task t
JOIN annotation_prompt p ON p.id = t.prompt_id
JOIN annotation_response ra ON ra.id = t.response_a_id
LEFT JOIN annotation_response rb ON rb.id = t.response_b_id
"""

_SELECT_ID = """SELECT t.id
FROM annotation_task t
JOIN annotation_response ra ON ra.id = t.response_a_id
LEFT JOIN annotation_response rb ON rb.id = t.response_b_id
"""

_LIVE_LEASES = """(SELECT COUNT(*) FROM annotation_assignment l
     WHERE l.task_id = t.id AND l.status = %s AND l.expires_at > %s)"""

# The same count for one task given by id (parameters: task id, status, now).
_ONE_TASK_LIVE_LEASES = _LIVE_LEASES.replace("t.id", "%s")

_OPEN_FOR_ANNOTATOR = (
    """WHERE t.project_id = %s AND t.kind = %s AND t.done_count < t.overlap_wanted
  AND t.done_count + """
    + _LIVE_LEASES
    + """ < t.overlap_wanted
  AND NOT EXISTS (SELECT 1 FROM annotation_assignment s
                  WHERE s.task_id = t.id AND s.annotator_id = %s LIMIT 1 OFFSET 0)
"""
)
# ``LIMIT 1 OFFSET 0`` keeps each check a per-row probe by task (PostgreSQL does not turn
# it into an anti-join): planned as a join with an empty table's statistics, the check read
# the caller's whole history through their annotator index for every candidate row.
_NOT_JUDGED = """  AND NOT EXISTS (SELECT 1 FROM annotation_judgment j
                  WHERE j.task_id = t.id AND j.annotator_id = %s LIMIT 1 OFFSET 0)
"""
_NOT_RATED = """  AND NOT EXISTS (SELECT 1 FROM annotation_feedback f
                  WHERE f.response_id = t.response_a_id AND f.annotator_id = %s
                  LIMIT 1 OFFSET 0)
"""
_NOT_OWN = """  AND (ra.author_id IS NULL OR ra.author_id <> %s)
  AND (rb.author_id IS NULL OR rb.author_id <> %s)
"""
# Must match the expressions of the index ``task_open_queue_v2`` (annotation/models.py).
_ORDER = "ORDER BY (t.overlap_wanted - t.done_count), t.queue_key, t.id\nLIMIT 1"


def build(row: tuple) -> Task:
    """The candidate task with its prompt and responses attached (from a ``SELECT`` row)."""
    task, prompt, response_a, response_b = _PAYLOAD.read(row)
    task.prompt, task.response_a, task.response_b = prompt, response_a, response_b
    return task


def candidate_filter(
    *, project_id: int, kind: str, annotator_id: int, exclude_own: bool, now: datetime,
    skip: list[int],
) -> tuple[str, list]:
    """The WHERE clause (and its parameters) of the annotator's acceptable open tasks."""
    where = _OPEN_FOR_ANNOTATOR
    params: list = [project_id, kind, _LEASED, when(now), annotator_id]
    where += _NOT_JUDGED if kind == Task.Kind.PAIRWISE else _NOT_RATED
    params.append(annotator_id)
    if exclude_own:
        where += _NOT_OWN
        params += [annotator_id, annotator_id]
    if skip:
        where += f"  AND t.id NOT IN ({', '.join(['%s'] * len(skip))})\n"
        params += skip
    return where, params


def candidate_sql(**filters) -> tuple[str, list]:
    """The full candidate statement without its lock clause (for EXPLAIN in tests)."""
    where, params = candidate_filter(**filters)
    return SELECT + where + _ORDER, params


def candidate_lock(
    *,
    project_id: int,
    kind: str,
    annotator_id: int,
    exclude_own: bool,
    now: datetime,
    skip: list[int],
    wait: bool = False,
) -> Task | None:
    """Lock and return the annotator's best candidate task (``skip``: ids to pass over).

    ``wait=False`` skips rows other transactions hold. ``wait=True`` (PostgreSQL; on
    SQLite both are the same) picks the first candidate without locking, then waits
    for exactly that row: a locking scan that waited row by row would keep the lock
    of every row it passed over and could deadlock with another annotator's scan.
    The caller re-checks the slot (``lease_insert_if_free``) either way.
    """
    where, params = candidate_filter(
        project_id=project_id, kind=kind, annotator_id=annotator_id,
        exclude_own=exclude_own, now=now, skip=skip,
    )
    locking = connection.features.has_select_for_update
    with rawsql.cursor() as cursor:
        if wait and locking:
            cursor.execute(_SELECT_ID + where + _ORDER, params)
            first = cursor.fetchone()
            if first is None:
                return None
            cursor.execute(SELECT + "WHERE t.id = %s FOR UPDATE OF t", [first[0]])
        else:
            lock = " FOR UPDATE OF t SKIP LOCKED" if locking else ""
            cursor.execute(SELECT + where + _ORDER + lock, params)
        row = cursor.fetchone()
    return build(row) if row else None


def live_lease_count(*, task_id: int, now: datetime) -> int:
    """Live leases of one task (the same test every statement here uses)."""
    with rawsql.cursor() as cursor:
        cursor.execute("SELECT " + _ONE_TASK_LIVE_LEASES, [task_id, _LEASED, when(now)])
        return cursor.fetchone()[0]


def lease_insert_if_free(
    *, task_id: int, annotator_id: int, left_is_a: bool, now: datetime, expires_at: datetime,
    walk_from: str = "",
) -> int | None:
    """Insert a live lease if the task still has a free slot; returns its id or None.

    The task also moves to the back of its tier of the queue (``queue_key`` = now in
    microseconds): a leased task no longer sits at the head where every later call
    would walk past it, so the walk stays short however many annotators hold leases.
    On PostgreSQL both writes are one statement. ``walk_from`` is where this
    annotator's next walk may start (``queue_walk``), stored with the lease.
    """
    free = "done_count + " + _ONE_TASK_LIVE_LEASES + " < overlap_wanted"
    key = int(now.timestamp() * 1_000_000)
    lease = [annotator_id, _LEASED, left_is_a, when(now), when(expires_at), walk_from]
    count = [task_id, _LEASED, when(now)]
    with rawsql.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_LEASE_CTE.format(free=free), [key, task_id, *count, *lease])
            row = cursor.fetchone()
        else:
            cursor.execute(_LEASE_INSERT.format(free=free), [*lease, task_id, *count])
            row = cursor.fetchone()
            if row:
                cursor.execute(_QUEUE_BACK, [key, task_id])
    return row[0] if row else None


_LEASE_COLUMNS = "(task_id, annotator_id, status, left_is_a, leased_at, expires_at, walk_from)"
_LEASE_CTE = (
    """WITH moved AS (
  UPDATE annotation_task SET queue_key = %s WHERE id = %s AND {free} RETURNING id)
INSERT INTO annotation_assignment """
    + _LEASE_COLUMNS
    + """
SELECT moved.id, %s, %s, %s, %s, %s, %s FROM moved
RETURNING id"""
)
_LEASE_INSERT = (
    "INSERT INTO annotation_assignment "
    + _LEASE_COLUMNS
    + """
SELECT id, %s, %s, %s, %s, %s, %s FROM annotation_task WHERE id = %s AND {free}
RETURNING id"""
)
_QUEUE_BACK = "UPDATE annotation_task SET queue_key = %s WHERE id = %s"


@dataclass(frozen=True)
class Caller:
    """What the next-task call needs to know about its caller, read in one statement."""

    is_member: bool
    lease_id: int | None  # their live lease of this kind, if any
    walk_from: str  # where their last walk said the next may start ("" = the head)
    oldest_live_lease: datetime | None  # of the project's kind, anybody's


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite: naive UTC text


_CALLER = """SELECT m.id, (
    SELECT a.id FROM annotation_assignment a JOIN annotation_task t ON t.id = a.task_id
    WHERE a.annotator_id = %s AND a.status = %s AND a.expires_at > %s
      AND t.project_id = %s AND t.kind = %s
    ORDER BY a.expires_at LIMIT 1), (
    SELECT a.walk_from FROM annotation_assignment a JOIN annotation_task t ON t.id = a.task_id
    WHERE a.annotator_id = %s AND t.project_id = %s AND t.kind = %s
    ORDER BY a.id DESC LIMIT 1), (
    SELECT MIN(a.leased_at) FROM annotation_assignment a
      JOIN annotation_task t ON t.id = a.task_id
    WHERE a.status = %s AND a.expires_at > %s AND t.project_id = %s AND t.kind = %s)
FROM annotation_membership m WHERE m.project_id = %s AND m.user_id = %s"""


def membership_lock_with_lease(
    *, project_id: int, annotator_id: int, kind: str, now: datetime
) -> Caller:
    """Lock the caller's membership row (serialising their own calls) and, in the same
    statement, read their live lease for ``kind``, their walk cursor (from their latest
    assignment of the kind, index ``assignment_by_annotator``) and the project's oldest
    live lease."""
    live = [_LEASED, when(now), project_id, kind]
    params = [annotator_id, *live, annotator_id, project_id, kind, *live]
    sql = _CALLER + (" FOR UPDATE OF m" if connection.features.has_select_for_update else "")
    with rawsql.cursor() as cursor:
        cursor.execute(sql, [*params, project_id, annotator_id])
        row = cursor.fetchone()
    if row is None:
        return Caller(False, None, "", None)
    return Caller(True, row[1], row[2] or "", _moment(row[3]))


def row_locks() -> bool:
    """Whether this database takes row locks (PostgreSQL); SQLite serialises writers."""
    return connection.features.has_select_for_update


def lease_complete(*, assignment_id: int, now: datetime) -> bool:
    """Turn a live lease into a finished one; False if it was not live."""
    sql = """UPDATE annotation_assignment SET status = %s, finished_at = %s
WHERE id = %s AND status = %s AND expires_at > %s"""
    params = [Assignment.Status.DONE, when(now), assignment_id, _LEASED, when(now)]
    with rawsql.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def task_slot_take(*, task_id: int) -> bool:
    """Count one more verdict on the task unless it is full (never past its overlap).

    The task changes tier, so it goes to the back of its new one (``queue_key`` = now,
    behind every annotator's walk cursor, see ``queue_walk``)."""
    sql = """UPDATE annotation_task SET done_count = done_count + 1, queue_key = %s
WHERE id = %s AND done_count < overlap_wanted"""
    key = int(timezone.now().timestamp() * 1_000_000)
    with rawsql.cursor() as cursor:
        cursor.execute(sql, [key, task_id])
        return cursor.rowcount == 1
