"""Submitting verdicts: pairwise judgments and thumbs feedback, each stored once.

Idempotency. A retried request, a double click or a second tab returns the
verdict already stored, never a second row: the database has one unique
constraint on (task, annotator) for judgments, one on (response, annotator) for
feedback, and one on the idempotency key. Keys are namespaced per annotator
(``"<user id>:<key>"``) so one user's key can never collide with another's; the
same key reused for a *different* task is a conflict (409).

Leases. The normal path completes a live lease: one conditional UPDATE of the
assignment, one conditional UPDATE of ``Task.done_count`` (it can never pass
``overlap_wanted``: the UPDATE's condition and a check constraint both say so) and
one INSERT. An **expired lease is honoured when the task still has a free slot**
(finished verdicts plus other annotators' live leases below ``overlap_wanted``):
a slow annotator's work is kept unless somebody else already took the slot, in
which case the submission is refused with 409 and nothing is stored.

Choices are stored as ``a`` / ``b`` / ``tie`` / ``both_bad``; callers that only know
what the annotator saw may pass ``left`` / ``right`` and the assignment's recorded
``left_is_a`` resolves it. Ties and both-bad carry no strength (stored as 0).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from annotation.data import lease_sql
from annotation.models import Assignment, Feedback, Judgment, Project, Task
from annotation.services.assignment import (
    NOT_YOUR_ASSIGNMENT,
    task_has_free_slot,
    task_next_for_annotator,
)
from prefloop import rawsql
from prefloop.exceptions import ApplicationError, ConflictError, PermissionError_

WRONG_KIND = "This is not a {kind} task."
CHOICE_NOT_ALLOWED = "Choice {choice!r} is not allowed in this project."
STRENGTH_RANGE = "Strength must be an integer from 1 to {levels}."
SIDE_NEEDS_ASSIGNMENT = "Choices 'left' and 'right' need the assignment that showed them."
RATIONALE_TOO_LONG = "The rationale is longer than {limit} characters."
TIME_NEGATIVE = "time_spent_ms cannot be negative."
TIME_TOO_LONG = "time_spent_ms is more than {limit}."
KEY_TOO_LONG = "The idempotency key is longer than {limit} characters."
KEY_REUSED = "This idempotency key was already used for another submission."
ASSIGNMENT_SKIPPED = "You skipped this task."
ASSIGNMENT_CLOSED = "This assignment is closed."
LEASE_EXPIRED_TASK_FULL = "Your lease expired and the task has since been given to others."
TASK_FULL = "This task already has all the verdicts it needs."
OWN_RESPONSE = "You cannot judge a response you wrote."
TASK_OR_ASSIGNMENT = "Pass exactly one of assignment or task."
NOTHING_LEFT = "No task is left for you in this project right now."

RATIONALE_MAX = 10_000
KEY_MAX = 64
TIME_MAX_MS = 2**31 - 1  # the column's range (about 24 days)
NO_STRENGTH = (Judgment.Choice.TIE, Judgment.Choice.BOTH_BAD)


def side_to_choice(*, side: str, left_is_a: bool) -> str:
    """``left``/``right`` (what the annotator saw) to ``a``/``b``; other choices pass through."""
    if side == "left":
        return "a" if left_is_a else "b"
    if side == "right":
        return "b" if left_is_a else "a"
    return side


def choice_to_side(*, choice: str, shown_left: str) -> str:
    if choice in ("a", "b"):
        return "left" if choice == shown_left else "right"
    return choice


def _allowed_choices(project: Project) -> set[str]:
    allowed = {Judgment.Choice.A, Judgment.Choice.B}
    if project.allow_tie:
        allowed.add(Judgment.Choice.TIE)
    if project.allow_both_bad:
        allowed.add(Judgment.Choice.BOTH_BAD)
    return allowed


def _choice_validate(*, project: Project, choice: str, strength: int) -> int:
    """Check an a/b/tie/both_bad choice; returns the strength to store."""
    if choice not in _allowed_choices(project):
        raise ApplicationError(CHOICE_NOT_ALLOWED.format(choice=choice))
    if choice in NO_STRENGTH:
        return 0
    if not isinstance(strength, int) or not 1 <= strength <= project.strength_levels:
        raise ApplicationError(STRENGTH_RANGE.format(levels=project.strength_levels))
    return strength


def _common_validate(*, rationale: str, time_spent_ms: int | None) -> None:
    if len(rationale) > RATIONALE_MAX:
        raise ApplicationError(RATIONALE_TOO_LONG.format(limit=RATIONALE_MAX))
    if time_spent_ms is not None and time_spent_ms < 0:
        raise ApplicationError(TIME_NEGATIVE)
    if time_spent_ms is not None and time_spent_ms > TIME_MAX_MS:
        raise ApplicationError(TIME_TOO_LONG.format(limit=TIME_MAX_MS))


def _key(*, annotator: AbstractBaseUser, key: str | None) -> str | None:
    if not key:
        return None
    if len(key) > KEY_MAX:
        raise ApplicationError(KEY_TOO_LONG.format(limit=KEY_MAX))
    return f"{annotator.pk}:{key}"


def _task_of(*, assignment: Assignment | None, task: Task | None, kind: str) -> Task:
    if (assignment is None) == (task is None):
        raise ValueError(TASK_OR_ASSIGNMENT)
    task = assignment.task if assignment is not None else task
    if task.kind != kind:
        raise ApplicationError(WRONG_KIND.format(kind=kind))
    return task


def judgment_submit(
    *,
    annotator: AbstractBaseUser,
    choice: str,
    assignment: Assignment | None = None,
    task: Task | None = None,
    strength: int = 1,
    rationale: str = "",
    time_spent_ms: int | None = None,
    idempotency_key: str | None = None,
    shown_left: str = "a",
    source: str = Judgment.Source.HUMAN,
    soft_label: float | None = None,
    metadata: dict | None = None,
) -> tuple[Judgment, bool]:
    """Store a pairwise verdict; returns ``(judgment, created)``.

    Pass the ``assignment`` (the API does) or, for programmatic judges without a
    lease, the ``task`` plus ``shown_left``. Validation happens before any write.
    """
    task = _task_of(assignment=assignment, task=task, kind=Task.Kind.PAIRWISE)
    if assignment is not None:
        shown_left = "a" if assignment.left_is_a else "b"
    elif choice in ("left", "right"):
        raise ApplicationError(SIDE_NEEDS_ASSIGNMENT)
    choice = side_to_choice(side=choice, left_is_a=shown_left == "a")
    strength = _choice_validate(project=task.project, choice=choice, strength=strength)
    _common_validate(rationale=rationale, time_spent_ms=time_spent_ms)
    fields = {
        "choice": choice,
        "strength": strength,
        "rationale": rationale,
        "shown_left": shown_left,
        "time_spent_ms": time_spent_ms,
        "source": source,
        "idempotency_key": _key(annotator=annotator, key=idempotency_key),
        "soft_label": soft_label,
        "metadata": metadata or {},
    }
    lookup = {"task": task, "annotator": annotator}
    return _submit(model=Judgment, lookup=lookup, fields=fields, task=task, assignment=assignment)


def judgment_submit_and_next(
    *, assignment: Assignment, annotator: AbstractBaseUser, **verdict: Any
) -> tuple[Judgment, bool, Assignment | None, str | None]:
    """Store the verdict on ``assignment``, then lease the annotator's next pairwise task.

    Returns ``(judgment, created, next lease or None, why there is none)``. Two
    transactions: the verdict is committed whatever happens to the lease, and a stored
    verdict is always answered as stored. If no next task can be handed out (nothing
    is left, the owner disabled pairwise tasks after this lease was taken, or the caller
    is no longer a member), the next lease is None and the last item says why, in plain
    words. A repeat (same key, or same task) returns the stored verdict and, since the
    lease already handed out is still live, the same next task.
    """
    judgment, created = judgment_submit(assignment=assignment, annotator=annotator, **verdict)
    try:
        following = task_next_for_annotator(
            project=assignment.task.project, annotator=annotator, kind=Task.Kind.PAIRWISE
        )
    except ApplicationError as exc:  # the verdict is stored: say why no next task, not 4xx
        return judgment, created, None, exc.message
    return judgment, created, following, None if following else NOTHING_LEFT


def feedback_submit(
    *,
    annotator: AbstractBaseUser,
    thumbs_up: bool,
    assignment: Assignment | None = None,
    task: Task | None = None,
    rationale: str = "",
    time_spent_ms: int | None = None,
    idempotency_key: str | None = None,
    source: str = Feedback.Source.HUMAN,
    metadata: dict | None = None,
) -> tuple[Feedback, bool]:
    """Store thumbs up/down on a binary task's response; returns ``(feedback, created)``."""
    task = _task_of(assignment=assignment, task=task, kind=Task.Kind.BINARY)
    _common_validate(rationale=rationale, time_spent_ms=time_spent_ms)
    fields = {
        "task": task,
        "thumbs_up": bool(thumbs_up),
        "rationale": rationale,
        "time_spent_ms": time_spent_ms,
        "source": source,
        "idempotency_key": _key(annotator=annotator, key=idempotency_key),
        "metadata": metadata or {},
    }
    lookup = {"response_id": task.response_a_id, "annotator": annotator}
    return _submit(model=Feedback, lookup=lookup, fields=fields, task=task, assignment=assignment)


def _submit(
    *,
    model: type[models.Model],
    lookup: dict[str, Any],
    fields: dict[str, Any],
    task: Task,
    assignment: Assignment | None,
) -> tuple[Any, bool]:
    annotator = lookup["annotator"]
    if assignment is not None and assignment.annotator_id != annotator.pk:
        raise PermissionError_(NOT_YOUR_ASSIGNMENT)
    try:
        return _submit_atomic(
            model=model, lookup=lookup, fields=fields, task=task, assignment=assignment
        )
    except IntegrityError:
        # A concurrent twin won the race (or the key was used before): the
        # transaction above rolled back, so nothing of ours was written.
        existing = model.objects.filter(**lookup).first()
        if existing is not None:
            return existing, False
        key = fields["idempotency_key"]
        if key and model.objects.filter(idempotency_key=key).exists():
            raise ConflictError(KEY_REUSED) from None
        raise


@transaction.atomic
def _submit_atomic(
    *,
    model: type[models.Model],
    lookup: dict[str, Any],
    fields: dict[str, Any],
    task: Task,
    assignment: Assignment | None,
) -> tuple[Any, bool]:
    if assignment is None:
        existing = _slot_claim_without_lease(model=model, lookup=lookup, task=task)
    elif _lease_complete(assignment=assignment):
        existing = None
    else:
        existing = model.objects.filter(**lookup).first() or _lease_honour_expired(
            model=model, lookup=lookup, assignment=assignment, task=task
        )
    if existing is not None:
        return existing, False
    if not lease_sql.task_slot_take(task_id=task.pk):
        raise ConflictError(TASK_FULL)
    return rawsql.insert(model(**lookup, **fields)), True


def _lease_complete(*, assignment: Assignment) -> bool:
    """Turn a live lease into a finished one (one UPDATE); False if it was not live."""
    now = timezone.now()
    done = lease_sql.lease_complete(assignment_id=assignment.pk, now=now)
    if done:
        assignment.status, assignment.finished_at = Assignment.Status.DONE, now
    return done


def _lease_honour_expired(
    *, model: type[models.Model], lookup: dict[str, Any], assignment: Assignment, task: Task
) -> Any | None:
    """Accept work on a lapsed lease if the slot is still free (see the module docstring).

    Locks the assignment before the task, the order every submission uses."""
    status = (
        Assignment.objects.select_for_update()
        .filter(pk=assignment.pk)
        .values_list("status", flat=True)
        .get()
    )
    if status == Assignment.Status.SKIPPED:
        raise ConflictError(ASSIGNMENT_SKIPPED)
    if status == Assignment.Status.DONE:
        existing = model.objects.filter(**lookup).first()
        if existing is None:
            raise ConflictError(ASSIGNMENT_CLOSED)
        return existing
    locked = Task.objects.select_for_update().get(pk=task.pk)
    now = timezone.now()
    if not task_has_free_slot(task=locked, now=now):
        raise ConflictError(LEASE_EXPIRED_TASK_FULL)
    Assignment.objects.filter(pk=assignment.pk).update(
        status=Assignment.Status.DONE, finished_at=now
    )
    assignment.status, assignment.finished_at = Assignment.Status.DONE, now
    return None


def _slot_claim_without_lease(
    *, model: type[models.Model], lookup: dict[str, Any], task: Task
) -> Any | None:
    """For judges that work without a lease: the task must have a free slot."""
    annotator = lookup["annotator"]
    lease = Assignment.objects.filter(task=task, annotator=annotator).first()
    if lease is not None:  # they do hold one: take the lease path (same lock order)
        if _lease_complete(assignment=lease):
            return None
        existing = model.objects.filter(**lookup).first()
        return existing or _lease_honour_expired(
            model=model, lookup=lookup, assignment=lease, task=task
        )
    locked = Task.objects.select_for_update().get(pk=task.pk)
    existing = model.objects.filter(**lookup).first()
    if existing is not None:
        return existing
    authors = {task.response_a.author_id, task.response_b.author_id if task.response_b else None}
    if task.project.exclude_own_responses and annotator.pk in authors:
        raise ApplicationError(OWN_RESPONSE)
    if not task_has_free_slot(task=locked, now=timezone.now()):
        raise ConflictError(TASK_FULL)
    return None
