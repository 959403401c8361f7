"""Handing out work: leases, skips and adaptive overlap.

A task has ``overlap_wanted`` slots. A slot is taken by a finished judgment or
feedback (``Task.done_count``) or by a *live* lease (an ``Assignment`` with status
``leased`` whose ``expires_at`` is in the future). An expired lease frees its slot
at once, whether or not a later call has already relabelled it ``expired``.

Concurrency. On PostgreSQL the candidate task row is taken with ``SELECT ... FOR
UPDATE SKIP LOCKED``, so annotators spread over tasks instead of queueing on one.
Under READ COMMITTED the lease count read by that statement comes from its
snapshot, so once the row is locked the live leases are counted again in a new
statement (the lease's conditional INSERT, ``lease_sql.lease_insert_if_free``) and a
stale candidate is skipped. The candidate query walks the partial index
``task_open_queue_v2`` and stops at the first acceptable task, so its cost does not
grow with the project (``annotation/data/lease_sql.py``), and it starts past what the
annotator already passed, so it does not grow with their history either
(``annotation/data/queue_walk.py``; a walk from the head when that finds nothing). Only when
every candidate is locked (near the end of a project, by leases and submissions
in flight) does the call wait, on exactly one task row, so nobody is told
"nothing left" too early. Calls by the same annotator are serialised by locking their
``Membership`` row, so a double click never leases two tasks. Lock order is
membership -> task for leases and own assignment -> task for submissions;
reclaiming expired leases skips locked rows and never waits. On SQLite the
IMMEDIATE transaction mode (settings) serialises writers; row locks are no-ops.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Subquery
from django.db.models.functions import Least
from django.utils import timezone

from annotation.data import lease_sql, queue_walk
from annotation.models import Assignment, Project, Task
from annotation.selectors import agreement
from annotation.selectors import tasks as task_selectors
from prefloop.exceptions import ApplicationError, ConflictError, PermissionError_

KIND_DISABLED = "{kind} tasks are not enabled in this project."
NOT_A_MEMBER = "You are not a member of this project."
PROJECT_ARCHIVED = "This project is archived: it gives out no tasks."
NOT_YOUR_ASSIGNMENT = "This assignment belongs to another annotator."
ASSIGNMENT_ALREADY_DONE = "This assignment is already done and cannot be skipped."
MIN_AGREEMENT_RANGE = "min_agreement must be between 0 and 1."

RECLAIM_EVERY_SECONDS = 30.0
_last_reclaim = 0.0


def task_has_free_slot(*, task: Task, now) -> bool:
    """Call while holding the task row lock; counts leases in a fresh snapshot."""
    live = lease_sql.live_lease_count(task_id=task.pk, now=now)
    return task.done_count + live < task.overlap_wanted


def assignment_reclaim_expired(*, project: Project) -> int:
    """Mark the project's lapsed leases ``expired``; returns how many.

    Rows another transaction holds are skipped (a later call gets them), so this
    never waits and can never take part in a deadlock.
    """
    lapsed = Assignment.objects.filter(
        task__project=project, status=Assignment.Status.LEASED, expires_at__lte=timezone.now()
    ).select_for_update(skip_locked=True, of=("self",))
    return Assignment.objects.filter(pk__in=Subquery(lapsed.values("pk"))).update(
        status=Assignment.Status.EXPIRED
    )


def _candidate(
    *, query: dict, cursor: list[queue_walk.Position], stale: list[int]
) -> tuple[Task | None, list[queue_walk.Position]]:
    """The next candidate (locked) and the cursor its walk started from.

    From the caller's cursor first; if that finds nothing, from the head of the queue
    (the cursor is only a hint), and, when every candidate is held by a short
    transaction (a lease or a submission in flight), wait for one instead of saying
    "nothing left" too early: exactly one row is waited for and no other task row is
    held, so this cannot deadlock.
    """
    head = [queue_walk.START] * len(cursor)
    if cursor != head:
        task = queue_walk.candidate_lock_after(**query, cursor=cursor, skip=stale)
        if task is not None:
            return task, cursor
    task = lease_sql.candidate_lock(**query, skip=stale)
    if task is None and not stale and lease_sql.row_locks():
        task = lease_sql.candidate_lock(**query, skip=stale, wait=True)
    return task, head


def _lease_task(
    *, project: Project, annotator: AbstractBaseUser, kind: str, now, caller: lease_sql.Caller
) -> Assignment | None:
    """Lock a task with a free slot for this annotator and lease it (see the module docstring).

    Rare race: if the one task waited for turns out full and every other candidate
    is locked, this returns None although a slot may free up a moment later.
    """
    query = {
        "project_id": project.pk,
        "kind": kind,
        "annotator_id": annotator.pk,
        "exclude_own": project.exclude_own_responses,
        "now": now,
    }
    cursor = queue_walk.cursor_parse(caller.walk_from, tiers=queue_walk.tiers_for(project))
    bound_us = queue_walk.time_key(now) - queue_walk.MARGIN_US
    if caller.oldest_live_lease is not None:
        bound_us = min(bound_us, queue_walk.time_key(caller.oldest_live_lease))
    stale: list[int] = []
    while True:
        task, walked_from = _candidate(query=query, cursor=cursor, stale=stale)
        if task is None:
            return None
        left_is_a = bool(secrets.randbelow(2))
        expires_at = now + timedelta(seconds=project.lease_seconds)
        walk_from = queue_walk.cursor_advance(walked_from=walked_from, task=task, bound_us=bound_us)
        lease_id = lease_sql.lease_insert_if_free(
            task_id=task.pk, annotator_id=annotator.pk, left_is_a=left_is_a, now=now,
            expires_at=expires_at, walk_from=queue_walk.cursor_format(walk_from),
        )
        if lease_id is not None:
            task.project = project
            return Assignment(
                pk=lease_id, task=task, annotator=annotator, status=Assignment.Status.LEASED,
                left_is_a=left_is_a, leased_at=now, expires_at=expires_at,
            )
        stale.append(task.pk)  # a lease committed after our snapshot filled it


def _reclaim_due(*, found: bool) -> bool:
    """Relabel lapsed leases now and then, not on every call (correctness never needs it:
    every query treats a lease past ``expires_at`` as free)."""
    global _last_reclaim
    due = not found or time.monotonic() - _last_reclaim > RECLAIM_EVERY_SECONDS
    if due:
        _last_reclaim = time.monotonic()
    return due


@transaction.atomic
def task_next_for_annotator(
    *, project: Project, annotator: AbstractBaseUser, kind: str = Task.Kind.PAIRWISE
) -> Assignment | None:
    """Lease the annotator's next task, or return the lease they already hold.

    Returns ``None`` when nothing is left for them. Three SQL statements whatever
    the project size (two when a live lease is returned), plus, about every
    ``RECLAIM_EVERY_SECONDS`` per process and when nothing is found, the relabelling
    of lapsed leases. An archived project gives out nothing (``None``).
    """
    if project.archived_at is not None:
        return None
    enabled = {
        Task.Kind.PAIRWISE: project.pairwise_enabled,
        Task.Kind.BINARY: project.binary_enabled,
    }
    if not enabled.get(kind):
        raise ApplicationError(KIND_DISABLED.format(kind=str(kind).capitalize()))
    now = timezone.now()
    caller = lease_sql.membership_lock_with_lease(
        project_id=project.pk, annotator_id=annotator.pk, kind=kind, now=now
    )
    if not caller.is_member:
        raise PermissionError_(NOT_A_MEMBER)
    if caller.lease_id is not None:
        return task_selectors.assignment_get_for_annotator(
            assignment_id=caller.lease_id, annotator=annotator
        )
    assignment = _lease_task(
        project=project, annotator=annotator, kind=kind, now=now, caller=caller
    )
    if _reclaim_due(found=assignment is not None):
        assignment_reclaim_expired(project=project)
    return assignment


@transaction.atomic
def assignment_skip(*, assignment: Assignment, annotator: AbstractBaseUser) -> Assignment:
    """Give a task back. The annotator is never offered it again; skipping twice is a no-op."""
    if assignment.annotator_id != annotator.pk:
        raise PermissionError_(NOT_YOUR_ASSIGNMENT)
    locked = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if locked.status == Assignment.Status.DONE:
        raise ConflictError(ASSIGNMENT_ALREADY_DONE)
    if locked.status != Assignment.Status.SKIPPED:
        locked.status = Assignment.Status.SKIPPED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "finished_at"])
    assignment.status, assignment.finished_at = locked.status, locked.finished_at
    return assignment


@transaction.atomic
def task_slot_open(*, task_id: int) -> None:
    """One more judgment wanted on a task (an AI label routed to people, an audit slot).

    The task changes tier, so it goes to the back of its new one, like every other move
    (``annotation/data/queue_walk.py``): no annotator's walk cursor has passed it.
    """
    Task.objects.filter(pk=task_id).update(
        overlap_wanted=F("overlap_wanted") + 1, queue_key=queue_walk.time_key(timezone.now())
    )


def task_overlap_adapt(*, project: Project, min_agreement: float, step: int = 1) -> list[int]:
    """Ask for ``step`` more judgments on completed tasks whose agreement is below
    ``min_agreement`` (share of the most common answer), never above
    ``project.max_overlap``. Returns the ids of the tasks raised.
    """
    if not 0 <= min_agreement <= 1:
        raise ApplicationError(MIN_AGREEMENT_RANGE)
    shares = agreement.task_majority_shares(project=project)
    complete = Task.objects.filter(
        project=project, done_count__gte=F("overlap_wanted"), overlap_wanted__lt=project.max_overlap
    ).values_list("pk", flat=True)
    low = [pk for pk in complete if shares.get(pk, 1.0) < min_agreement]
    Task.objects.filter(pk__in=low).update(  # back of their new tier (queue_walk)
        overlap_wanted=Least(F("overlap_wanted") + step, project.max_overlap),
        queue_key=queue_walk.time_key(timezone.now()),
    )
    return low
