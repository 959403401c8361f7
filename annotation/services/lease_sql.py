"""Hand-written SQL for the annotator's hot path: find and lease the next task.

The ORM version of these statements cost more Python time to compile than the
database took to run them, and its ``ORDER BY`` could not use an index. Here:

- ``candidate_lock``: the first task this annotator may take, closest to completion
  first, in the order of the partial index ``task_open_queue`` (project, kind,
  slots left, id; open tasks only), so the scan stops at the first acceptable row
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

from datetime import datetime

from django.db import connection

from annotation.models import Assignment, Prompt, Response, Task

_TASK_FIELDS = (
    "id", "project_id", "kind", "prompt_id", "response_a_id", "response_b_id",
    "overlap_wanted", "done_count",
)  # fmt: skip
_RESPONSE_FIELDS = ("id", "text", "author_id")
_LEASED = Assignment.Status.LEASED

_SELECT = (
    "SELECT "
    + ", ".join(f"t.{f}" for f in _TASK_FIELDS)
    + ", p.messages, "
    + ", ".join(f"ra.{f}" for f in _RESPONSE_FIELDS)
    + ", "
    + ", ".join(f"rb.{f}" for f in _RESPONSE_FIELDS)
    + """
FROM annotation_task t
JOIN annotation_prompt p ON p.id = t.prompt_id
JOIN annotation_response ra ON ra.id = t.response_a_id
LEFT JOIN annotation_response rb ON rb.id = t.response_b_id
"""
)

_LIVE_LEASES = """(SELECT COUNT(*) FROM annotation_assignment l
     WHERE l.task_id = t.id AND l.status = %s AND l.expires_at > %s)"""

_OPEN_FOR_ANNOTATOR = (
    """WHERE t.project_id = %s AND t.kind = %s AND t.done_count < t.overlap_wanted
  AND t.done_count + """
    + _LIVE_LEASES
    + """ < t.overlap_wanted
  AND NOT EXISTS (SELECT 1 FROM annotation_assignment s
                  WHERE s.task_id = t.id AND s.annotator_id = %s)
"""
)
_NOT_JUDGED = """  AND NOT EXISTS (SELECT 1 FROM annotation_judgment j
                  WHERE j.task_id = t.id AND j.annotator_id = %s)
"""
_NOT_RATED = """  AND NOT EXISTS (SELECT 1 FROM annotation_feedback f
                  WHERE f.response_id = t.response_a_id AND f.annotator_id = %s)
"""
_NOT_OWN = """  AND (ra.author_id IS NULL OR ra.author_id <> %s)
  AND (rb.author_id IS NULL OR rb.author_id <> %s)
"""
# Must match the expression of the index ``task_open_queue`` (annotation/models.py).
_ORDER = "ORDER BY (t.overlap_wanted - t.done_count), t.id\nLIMIT 1"


def _when(value: datetime):
    """A datetime as the backend stores it (SQLite: naive UTC text, like the ORM writes)."""
    return connection.ops.adapt_datetimefield_value(value)


def _build(row: tuple) -> Task:
    n = len(_TASK_FIELDS)
    task = Task.from_db(connection.alias, _TASK_FIELDS, row[:n])
    messages = Prompt._meta.get_field("messages").from_db_value(row[n], None, connection)
    task.prompt = Prompt.from_db(connection.alias, ("id", "messages"), (task.prompt_id, messages))
    a = row[n + 1 : n + 1 + len(_RESPONSE_FIELDS)]
    b = row[n + 1 + len(_RESPONSE_FIELDS) :]
    task.response_a = Response.from_db(connection.alias, _RESPONSE_FIELDS, a)
    task.response_b = (
        Response.from_db(connection.alias, _RESPONSE_FIELDS, b) if b[0] is not None else None
    )
    return task


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

    ``wait=False`` skips rows other transactions hold; ``wait=True`` waits for the
    first candidate instead (PostgreSQL; on SQLite both are the same).
    """
    sql = _SELECT + _OPEN_FOR_ANNOTATOR
    params: list = [project_id, kind, _LEASED, _when(now), annotator_id]
    sql += _NOT_JUDGED if kind == Task.Kind.PAIRWISE else _NOT_RATED
    params.append(annotator_id)
    if exclude_own:
        sql += _NOT_OWN
        params += [annotator_id, annotator_id]
    if skip:
        sql += f"  AND t.id NOT IN ({', '.join(['%s'] * len(skip))})\n"
        params += skip
    sql += _ORDER
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE OF t" + ("" if wait else " SKIP LOCKED")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _build(row) if row else None


def lease_insert_if_free(
    *, task_id: int, annotator_id: int, left_is_a: bool, now: datetime, expires_at: datetime
) -> int | None:
    """Insert a live lease if the task still has a free slot; returns its id or None."""
    sql = (
        """INSERT INTO annotation_assignment
    (task_id, annotator_id, status, left_is_a, leased_at, expires_at)
SELECT t.id, %s, %s, %s, %s, %s FROM annotation_task t
WHERE t.id = %s AND t.done_count + """
        + _LIVE_LEASES
        + """ < t.overlap_wanted
RETURNING id"""
    )
    params = [annotator_id, _LEASED, left_is_a, _when(now), _when(expires_at), task_id]
    params += [_LEASED, _when(now)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None
