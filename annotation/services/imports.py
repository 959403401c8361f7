"""Import prompts, responses and existing verdicts: validate the whole file, then write.

A file with any bad row imports nothing unless ``partial`` is asked for; then the good
rows are imported and the bad ones reported. Everything is written in one transaction
(one savepoint per row), and every creator is idempotent, so importing a file twice
creates nothing new. Imported pairs become a pairwise task with an imported judgment
(choice ``a`` = chosen) by the project's import pseudo-annotator; imported KTO labels
become feedback on a binary task. Each counts as one judgment towards the task's overlap.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from rest_framework import status

from annotation.io.readers import FileRejected, FileTooLarge
from annotation.io.rows import PREFERENCE, PROMPT_RESPONSES, UNPAIRED, ImportRow
from annotation.io.validate import ImportLimits, Validation, file_validate
from annotation.models import AnnotatorProfile, Feedback, Judgment, Project, Prompt, Response, Task
from annotation.services import content, projects
from prefloop.exceptions import ApplicationError, NotFoundError

IMPORT_USER_PREFIX = "prefloop-import-"
ENTITIES = ("prompts", "responses", "tasks", "judgments", "feedback")
MSG_CONTRADICTS = "contradicts the verdict already imported for this {what}"


class ImportRejected(ApplicationError):
    """The file as a whole cannot be imported (unreadable, empty, unknown format)."""


class ImportTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class _RowConflict(Exception):
    pass


class _Rollback(Exception):
    def __init__(self, issues: list[dict]) -> None:
        super().__init__("import rolled back")
        self.issues = issues


@dataclass
class ImportReport:
    imported: bool
    format: str
    kind: str | None
    rows: int
    rows_valid: int
    rows_imported: int = 0
    errors: list[dict] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {**self.__dict__, "error_count": len(self.errors)}


def import_limits() -> ImportLimits:
    """Limits from settings; field and row limits are optional settings with defaults."""
    return ImportLimits(
        max_bytes=settings.PREFLOOP_MAX_IMPORT_BYTES,
        max_field_chars=settings.PREFLOOP_MAX_IMPORT_FIELD_CHARS,
        max_rows=settings.PREFLOOP_MAX_IMPORT_ROWS,
    )


def import_file(
    *,
    project: Project,
    path: Path,
    fmt: str = "auto",
    partial: bool = False,
    limits: ImportLimits | None = None,
    source_name: str = "",
) -> ImportReport:
    """Validate ``path`` completely, then import it (or nothing) in one transaction."""
    try:
        validation = file_validate(Path(path), fmt=fmt, limits=limits or import_limits())
    except FileTooLarge as exc:
        raise ImportTooLarge(str(exc)) from exc
    except FileRejected as exc:
        raise ImportRejected(str(exc)) from exc
    report = _report_start(validation)
    if (validation.issues and not partial) or not validation.rows:
        return report
    try:
        with transaction.atomic():
            counts, issues = _rows_write(project, validation.rows, source_name or Path(path).name)
            if issues and not partial:
                raise _Rollback(issues)
    except _Rollback as rollback:
        report.errors = sorted(report.errors + rollback.issues, key=lambda e: e["line"])
        return report
    report.errors = sorted(report.errors + issues, key=lambda e: e["line"])
    report.rows_imported = len(validation.rows) - len(issues)
    report.imported = report.rows_imported > 0
    report.created = {name: counts[(name, True)] for name in ENTITIES}
    report.existing = {name: counts[(name, False)] for name in ENTITIES}
    return report


def import_upload(
    *, project: Project, upload: UploadedFile, fmt: str = "auto", partial: bool = False
) -> ImportReport:
    """An uploaded file (JSONL, CSV, or a zip of a ``save_to_disk`` folder)."""
    limits = import_limits()
    if upload.size is not None and upload.size > limits.max_bytes:
        raise ImportTooLarge(
            f"the file is {upload.size:,} bytes; the import limit is {limits.max_bytes:,} "
            "bytes (PREFLOOP_MAX_IMPORT_BYTES): split it into smaller files"
        )
    suffix = Path(upload.name or "").suffix.lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    with tempfile.NamedTemporaryFile(suffix=suffix, prefix="prefloop-upload-") as scratch:
        for chunk in upload.chunks():
            scratch.write(chunk)
        scratch.flush()
        return import_file(
            project=project, path=Path(scratch.name), fmt=fmt, partial=partial,
            limits=limits, source_name=upload.name or "",
        )  # fmt: skip


@transaction.atomic
def import_project_resolve(
    *, slug: str, create: bool = False, owner_username: str | None = None
) -> tuple[Project, bool]:
    """The project to import into; with ``create`` a missing one is made for its owner."""
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    if not create:
        raise NotFoundError(f"project {slug!r} does not exist (pass --create to make it)")
    users = get_user_model().objects
    if owner_username:
        owner = users.filter(username=owner_username).first()
        if owner is None:
            raise NotFoundError(f"user {owner_username!r} does not exist")
    else:
        owner = users.filter(is_superuser=True).order_by("pk").first()
        if owner is None:
            raise ApplicationError("no superuser exists to own the project: pass --owner USERNAME")
    return projects.project_create(slug=slug, owner=owner), True


def import_user_get_or_create(*, project: Project) -> AbstractBaseUser:
    """The per-project pseudo-annotator that imported verdicts are recorded under."""
    return projects.annotator_user_get_or_create(
        username=f"{IMPORT_USER_PREFIX}{project.slug}",
        kind=AnnotatorProfile.Kind.AI,
        config={"role": "import", "project": project.slug},
    )


def _report_start(validation: Validation) -> ImportReport:
    report = ImportReport(
        imported=False,
        format=validation.format,
        kind=validation.kind,
        rows=validation.records,
        rows_valid=len(validation.rows),
        errors=[issue.as_dict() for issue in validation.issues],
    )
    if validation.ignored_columns:
        report.warnings.append(f"ignored columns: {', '.join(validation.ignored_columns)}")
    return report


def _rows_write(project: Project, rows: list[ImportRow], source: str) -> tuple[Counter, list]:
    """Write each row in its own savepoint; a conflicting row is rolled back and reported."""
    counts: Counter = Counter()
    issues = []
    user = None
    if any(row.kind in (PREFERENCE, UNPAIRED) for row in rows):
        user = import_user_get_or_create(project=project)
    for row in rows:
        events: Counter = Counter()
        try:
            with transaction.atomic():
                _row_write(project, row, events, user, source)
        except _RowConflict as exc:
            issues.append({"line": row.line, "where": row.where, "reason": str(exc)})
        else:
            counts.update(events)
    return counts, issues


def _row_write(project: Project, row: ImportRow, events: Counter, user, source: str) -> None:
    prompt, created = content.prompt_get_or_create(
        project=project, messages=row.messages, tags=row.tags,
        split=row.split or Prompt.Split.TRAIN,
    )  # fmt: skip
    events["prompts", created] += 1
    if row.kind == PROMPT_RESPONSES:
        responses = [_response(prompt, text, model, events) for text, model in row.responses]
        _tasks_for_responses(project, responses, events)
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
    )  # fmt: skip
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


def _tasks_for_responses(project: Project, responses: list[Response], events: Counter) -> None:
    """Make imported responses ready to label: every pair, and thumbs if enabled."""
    unique = list({r.pk: r for r in responses}.values())
    if project.pairwise_enabled:
        for i, first in enumerate(unique):
            for second in unique[i + 1 :]:
                _pair_task(project, first, second, events)
    if project.binary_enabled:
        for response in unique:
            _, created = content.task_get_or_create(project=project, response_a=response)
            events["tasks", created] += 1


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
    )  # fmt: skip
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
    )  # fmt: skip
    _done_count_bump(task)
    events["feedback", True] += 1


def _done_count_bump(task: Task) -> None:
    Task.objects.filter(pk=task.pk, done_count__lt=F("overlap_wanted")).update(
        done_count=F("done_count") + 1
    )
