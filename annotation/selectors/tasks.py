"""Reads about work: an annotator's assignments and progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from annotation.models import Assignment, Feedback, Judgment, Project, Prompt, Response, Task
from prefloop import rawsql
from prefloop.rawsql import RowReader, columns

_ASSIGNMENT_READER = RowReader(Assignment, Task, Project, Prompt, Response, Response)
_ASSIGNMENT_SQL = f"""SELECT {columns(Assignment, "a")}, {columns(Task, "t")},
  {columns(Project, "pj")}, {columns(Prompt, "p")}, {columns(Response, "ra")},
  {columns(Response, "rb")}
FROM annotation_assignment a
JOIN annotation_task t ON t.id = a.task_id
JOIN annotation_project pj ON pj.id = t.project_id
JOIN annotation_prompt p ON p.id = t.prompt_id
JOIN annotation_response ra ON ra.id = t.response_a_id
LEFT JOIN annotation_response rb ON rb.id = t.response_b_id
WHERE a.id = %s AND a.annotator_id = %s
  AND EXISTS (SELECT 1 FROM annotation_membership m
              WHERE m.project_id = t.project_id AND m.user_id = %s)"""


def assignment_get_for_annotator(
    *, assignment_id: int, annotator: AbstractBaseUser
) -> Assignment | None:
    """The annotator's own assignment in a project they still belong to, else None.

    One hand-written statement (the annotator's hot path, see ``prefloop.rawsql``)
    loading the task, its project, prompt and responses with it.
    """
    with rawsql.cursor() as cursor:
        cursor.execute(_ASSIGNMENT_SQL, [assignment_id, annotator.pk, annotator.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    assignment, task, project, prompt, response_a, response_b = _ASSIGNMENT_READER.read(row)
    task.project, task.prompt = project, prompt
    task.response_a, task.response_b = response_a, response_b
    assignment.task = task
    return assignment


@dataclass(frozen=True)
class Progress:
    judgments: int
    feedback: int
    skipped: int
    leased: int
    project_tasks: int
    project_slots_wanted: int
    project_slots_done: int


def progress_for_annotator(*, project: Project, annotator: AbstractBaseUser) -> Progress:
    """The annotator's own counts and the project's overall completion (four queries)."""
    now = timezone.now()
    mine = Assignment.objects.filter(task__project=project, annotator=annotator).aggregate(
        skipped=Count("pk", filter=Q(status=Assignment.Status.SKIPPED)),
        leased=Count("pk", filter=Q(status=Assignment.Status.LEASED, expires_at__gt=now)),
    )
    totals = Task.objects.filter(project=project).aggregate(
        tasks=Count("pk"), wanted=Sum(F("overlap_wanted")), done=Sum(F("done_count"))
    )
    return Progress(
        judgments=Judgment.objects.filter(task__project=project, annotator=annotator).count(),
        feedback=Feedback.objects.filter(task__project=project, annotator=annotator).count(),
        skipped=mine["skipped"],
        leased=mine["leased"],
        project_tasks=totals["tasks"],
        project_slots_wanted=totals["wanted"] or 0,
        project_slots_done=totals["done"] or 0,
    )


@dataclass(frozen=True)
class AssignedTask:
    """What an annotator is shown: never the model, sampling or source of a response."""

    assignment_id: int
    task_id: int
    kind: str
    expires_at: datetime
    prompt: list[dict[str, str]]
    left: str | None
    right: str | None
    response: str | None
    strength_levels: int
    allow_tie: bool
    allow_both_bad: bool


def assigned_task_view(*, assignment: Assignment) -> AssignedTask:
    """Left/right in the order this annotator sees them (``Assignment.left_is_a``)."""
    task, project = assignment.task, assignment.task.project
    left = right = response = None
    if task.kind == Task.Kind.PAIRWISE:
        left, right = task.response_a.text, task.response_b.text
        if not assignment.left_is_a:
            left, right = right, left
    else:
        response = task.response_a.text
    return AssignedTask(
        assignment_id=assignment.pk,
        task_id=task.pk,
        kind=task.kind,
        expires_at=assignment.expires_at,
        prompt=task.prompt.messages,
        left=left,
        right=right,
        response=response,
        strength_levels=project.strength_levels,
        allow_tie=project.allow_tie,
        allow_both_bad=project.allow_both_bad,
    )
