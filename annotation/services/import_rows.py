"""Writing validated import rows: every creator is idempotent, each row in a savepoint.

``rows_write`` is the all-or-nothing path (the caller's transaction); ``rows_write_batched``
commits after each batch of ``PREFLOOP_IMPORT_BATCH_SECONDS`` (a quarter second by
default, plus one write: a task, or a whole preference / KTO row), so on SQLite no
import holds the database's write lock for longer than about that and annotators keep
working during a large import.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F

from annotation.io.rows import PREFERENCE, PROMPT_RESPONSES, UNPAIRED, ImportRow
from annotation.models import AnnotatorProfile, Feedback, Judgment, Project, Prompt, Response, Task
from annotation.services import content, projects

IMPORT_USER_PREFIX = "prefloop-import-"
MSG_CONTRADICTS = "contradicts the verdict already imported for this {what}"
BatchDone = Callable[[int, Counter, list], None]  # (rows done, counts, issues)


class _RowConflict(Exception):
    pass


def import_user_get_or_create(*, project: Project) -> AbstractBaseUser:
    """The per-project pseudo-annotator that imported verdicts are recorded under."""
    return projects.annotator_user_get_or_create(
        username=f"{IMPORT_USER_PREFIX}{project.slug}",
        kind=AnnotatorProfile.Kind.AI,
        config={"role": "import", "project": project.slug},
    )


def tasks_planned(*, project: Project, rows: Sequence[ImportRow]) -> int:
    """The most tasks the rows can create (before existing ones are found)."""
    total = 0
    for row in rows:
        if row.kind == PROMPT_RESPONSES:
            n = len({text for text, _ in row.responses})
            total += n * (n - 1) // 2 if project.pairwise_enabled else 0
            total += n if project.binary_enabled else 0
        elif row.kind in (PREFERENCE, UNPAIRED):
            total += 1
    return total


def rows_write(project: Project, rows: Sequence[ImportRow], source: str) -> tuple[Counter, list]:
    """Write each row in its own savepoint; a conflicting row is rolled back and reported."""
    counts: Counter = Counter()
    issues: list[dict] = []
    user = _import_user(project, rows)
    for row in rows:
        _row_write_counted(project, row, user, source, counts, issues)
    return counts, issues


def rows_write_batched(
    *,
    project: Project,
    rows: Sequence[ImportRow],
    source: str,
    batch_seconds: float,
    start: int = 0,
    on_batch: BatchDone | None = None,
) -> tuple[Counter, list]:
    """Like ``rows_write`` from ``rows[start:]``, committing every ``batch_seconds``.

    A prompt-responses row (up to hundreds of tasks) may itself span batches: its
    creators are idempotent and it holds no verdict that could conflict, so committing
    part of it is safe. ``on_batch`` runs inside each batch's transaction with the rows
    finished so far, so recorded progress and the rows it counts commit together."""
    counts: Counter = Counter()
    issues: list[dict] = []
    user = _import_user(project, rows)
    done, steps = start, None
    while done < len(rows):
        deadline = time.monotonic() + batch_seconds
        with transaction.atomic():
            while done < len(rows):
                row = rows[done]
                if row.kind != PROMPT_RESPONSES:
                    _row_write_counted(project, row, user, source, counts, issues)
                else:
                    steps = steps or _responses_row_steps(project, row, counts)
                    if not _steps_run(steps, deadline):
                        break  # commit; the row goes on in the next batch
                    steps = None
                done += 1
                if time.monotonic() >= deadline:
                    break
            if on_batch is not None:
                on_batch(done, counts, issues)
        _let_others_write()
    return counts, issues


def _let_others_write() -> None:
    """SQLite has one write lock, and a writer waiting for it only polls (every 100 ms
    once it has waited a while): without a pause the next batch would take the lock
    again first, every time. PostgreSQL locks rows and needs no pause."""
    if connection.vendor == "sqlite":
        time.sleep(settings.PREFLOOP_IMPORT_BATCH_PAUSE_SECONDS)


def _steps_run(steps: Iterator[None], deadline: float) -> bool:
    """Advance ``steps`` until it ends (True) or the deadline passes (False)."""
    for _ in steps:
        if time.monotonic() >= deadline:
            return False
    return True


def _responses_row_steps(project: Project, row: ImportRow, events: Counter) -> Iterator[None]:
    """A prompt-responses row, one write (prompt, response or task) per step."""
    prompt, created = content.prompt_get_or_create(
        project=project, messages=row.messages, tags=row.tags,
        split=row.split or Prompt.Split.TRAIN,
    )
    events["prompts", created] += 1
    responses = []
    for text, model in row.responses:
        responses.append(_response(prompt, text, model, events))
        yield
    yield from _tasks_for_responses(project, responses, events)


def _import_user(project: Project, rows: Sequence[ImportRow]):
    if any(row.kind in (PREFERENCE, UNPAIRED) for row in rows):
        return import_user_get_or_create(project=project)
    return None


def _row_write_counted(project, row, user, source, counts: Counter, issues: list) -> None:
    events: Counter = Counter()
    try:
        with transaction.atomic():
            _row_write(project, row, events, user, source)
    except _RowConflict as exc:
        issues.append({"line": row.line, "where": row.where, "reason": str(exc)})
    else:
        counts.update(events)


def _row_write(project: Project, row: ImportRow, events: Counter, user, source: str) -> None:
    prompt, created = content.prompt_get_or_create(
        project=project, messages=row.messages, tags=row.tags,
        split=row.split or Prompt.Split.TRAIN,
    )
    events["prompts", created] += 1
    if row.kind == PROMPT_RESPONSES:
        responses = [_response(prompt, text, model, events) for text, model in row.responses]
        for _ in _tasks_for_responses(project, responses, events):
            pass
    elif row.kind == PREFERENCE:
        chosen = _response(prompt, row.chosen, "", events)
        rejected = _response(prompt, row.rejected, "", events)
        task, choice = _pair_task(project, chosen, rejected, events)
        _judgment_import(task, user, choice, source, events)
    elif row.kind == UNPAIRED:
        response = _response(prompt, row.completion, "", events)
        task, created = content.task_get_or_create(project=project, response_a=response)
        events["tasks", created] += 1
        _feedback_import(task, response, user, row.label, source, events)


def _response(prompt: Prompt, text: str, model: str, events: Counter) -> Response:
    response, created = content.response_get_or_create(
        prompt=prompt, text=text, source=Response.Source.IMPORTED,
        metadata={"model": model} if model else {},
    )
    events["responses", created] += 1
    return response


def _pair_task(project: Project, first: Response, second: Response, events: Counter):
    """The pairwise task for two responses in either order; the choice ``first`` wins."""
    reverse = Task.objects.filter(
        kind=Task.Kind.PAIRWISE, pair_key=f"{second.pk}:{first.pk}"
    ).first()
    if reverse is not None:
        events["tasks", False] += 1
        return reverse, Judgment.Choice.B
    task, created = content.task_get_or_create(project=project, response_a=first, response_b=second)
    events["tasks", created] += 1
    return task, Judgment.Choice.A


def _tasks_for_responses(
    project: Project, responses: list[Response], events: Counter
) -> Iterator[None]:
    """Make imported responses ready to label: every pair, and thumbs if enabled (one
    task per step)."""
    unique = list({r.pk: r for r in responses}.values())
    if project.pairwise_enabled:
        for i, first in enumerate(unique):
            for second in unique[i + 1 :]:
                _pair_task(project, first, second, events)
                yield
    if project.binary_enabled:
        for response in unique:
            _, created = content.task_get_or_create(project=project, response_a=response)
            events["tasks", created] += 1
            yield


def _judgment_import(task: Task, user, choice: str, source: str, events: Counter) -> None:
    existing = Judgment.objects.filter(task=task, annotator=user).first()
    if existing is not None:
        if existing.choice != choice:
            raise _RowConflict(MSG_CONTRADICTS.format(what="pair"))
        events["judgments", False] += 1
        return
    Judgment.objects.create(
        task=task, annotator=user, choice=choice, source=Judgment.Source.IMPORTED,
        metadata={"import": source},
    )
    _done_count_bump(task)
    events["judgments", True] += 1


def _feedback_import(task, response, user, label: bool, source: str, events: Counter) -> None:
    existing = Feedback.objects.filter(response=response, annotator=user).first()
    if existing is not None:
        if existing.thumbs_up != label:
            raise _RowConflict(MSG_CONTRADICTS.format(what="completion"))
        events["feedback", False] += 1
        return
    Feedback.objects.create(
        response=response, task=task, annotator=user, thumbs_up=label,
        source=Feedback.Source.IMPORTED, metadata={"import": source},
    )
    _done_count_bump(task)
    events["feedback", True] += 1


def _done_count_bump(task: Task) -> None:
    Task.objects.filter(pk=task.pk, done_count__lt=F("overlap_wanted")).update(
        done_count=F("done_count") + 1
    )
