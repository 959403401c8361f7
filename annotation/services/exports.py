"""Export snapshots: judgments → TRL rows under ``ExportRules``, frozen by content hash.

A snapshot lives in ``DATA_DIR/exports/<project>/<sha256>/`` as ``data.jsonl`` (the
bytes the hash covers), ``README.md`` (dataset card) and ``prefloop_export.json``.
The same data gives the same hash, so exporting again returns the existing snapshot.
Training runs refer to a snapshot by its hash (``export_snapshot_get``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation.io import aggregate, writers
from annotation.io.aggregate import Vote
from annotation.io.paths import safe_path_under
from annotation.io.rules import ExportRules
from annotation.io.snapshots import snapshot_folder_write
from annotation.io.writers import ExportFormat
from annotation.models import ExportSnapshot, Feedback, Judgment, Project, Response, Task
from prefloop.exceptions import ApplicationError, NotFoundError

JSONL_SUFFIXES = (".jsonl", ".json")


def export_snapshot_create(
    *,
    project: Project,
    fmt: str,
    rules: ExportRules | None = None,
    user: AbstractBaseUser | None = None,
) -> tuple[ExportSnapshot, bool]:
    """Build the rows, hash them, and store a snapshot unless one with that hash exists."""
    if fmt not in writers.FORMATS:
        raise ApplicationError(
            f"unknown format {fmt!r}; expected one of {', '.join(writers.FORMATS)}"
        )
    export_format, rules = writers.FORMATS[fmt], rules or ExportRules()
    rows, counts = export_rows_build(project=project, fmt=export_format, rules=rules)
    data = writers.jsonl_bytes(rows)
    digest = writers.content_hash(data)
    info = writers.manifest(
        project=project.slug, fmt=export_format, rules=rules, counts=counts, digest=digest
    )
    return export_snapshot_store(
        project=project, fmt=fmt, data=data, manifest=info, card=writers.dataset_card(info),
        rules=rules.as_dict(), user=user,
    )  # fmt: skip


def export_snapshot_store(
    *,
    project: Project,
    fmt: str,
    data: bytes,
    manifest: dict,
    card: str,
    rules: dict,
    user: AbstractBaseUser | None = None,
) -> tuple[ExportSnapshot, bool]:
    """Store ``data`` (JSONL rows) as the project's snapshot, once per content hash.

    The one path by which snapshots are written (exports, rounds, AI-feedback training
    data): the folder under ``DATA_DIR/exports`` by ``snapshot_folder_write``, then its
    ``ExportSnapshot`` row. ``manifest`` holds ``content_hash`` and ``counts``.
    """
    digest = manifest["content_hash"]
    folder = snapshot_folder_write(
        root=Path(settings.DATA_DIR) / "exports", slug=project.slug, digest=digest,
        data=data, card=card, manifest=manifest,
    )  # fmt: skip
    return ExportSnapshot.objects.get_or_create(
        project=project, format=fmt, content_hash=digest,
        defaults={"path": str(folder), "rules": rules, "counts": manifest["counts"],
                  "created_by": user},
    )  # fmt: skip


def export_snapshot_get(*, content_hash: str, project: Project | None = None) -> ExportSnapshot:
    """The snapshot a training run names by hash (a selector: reads only)."""
    snapshots = ExportSnapshot.objects.filter(content_hash=content_hash)
    if project is not None:
        snapshots = snapshots.filter(project=project)
    snapshot = snapshots.order_by("pk").first()
    if snapshot is None:
        raise NotFoundError(f"no export snapshot with hash {content_hash}")
    return snapshot


def export_snapshot_list(*, project: Project) -> QuerySet[ExportSnapshot]:
    return ExportSnapshot.objects.filter(project=project).order_by("-created_at", "-pk")


def export_snapshot_file(*, snapshot: ExportSnapshot, name: str = writers.DATA_FILE) -> Path:
    """One of the snapshot's files (data, card, manifest, or the CSV view of the data)."""
    if name not in writers.SNAPSHOT_FILES:
        raise NotFoundError(f"a snapshot has no file {name!r}")
    path = safe_path_under(snapshot.path, name)
    if name == writers.CSV_FILE and not path.is_file():
        _csv_write(snapshot, path)
    if not path.is_file():
        raise NotFoundError(f"the snapshot's {name} is missing from {snapshot.path}")
    return path


def _csv_write(snapshot: ExportSnapshot, path: Path) -> None:
    """``data.csv``, made from ``data.jsonl`` on first request (spreadsheet-safe cells)."""
    source = export_snapshot_file(snapshot=snapshot)
    info = json.loads(export_snapshot_file(snapshot=snapshot, name=writers.MANIFEST_FILE)
                      .read_text("utf-8"))  # fmt: skip
    rows = [json.loads(line) for line in source.read_text("utf-8").splitlines() if line]
    data = writers.csv_bytes(rows, list(info["columns"]))
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(staging, 0o644)
    os.replace(staging, path)


def export_snapshot_write(*, snapshot: ExportSnapshot, out: Path) -> list[Path]:
    """Copy a snapshot to ``out``: ``*.jsonl`` gets JSONL, any other path a datasets folder.

    Beside a JSONL file the card and manifest are ``<stem>.README.md`` and
    ``<stem>.prefloop_export.json`` (so an existing README.md is never overwritten);
    a folder holds ``README.md`` and ``prefloop_export.json`` next to the Arrow data.
    """
    out = Path(out)
    source = export_snapshot_file(snapshot=snapshot)
    card = export_snapshot_file(snapshot=snapshot, name=writers.CARD_FILE)
    manifest = export_snapshot_file(snapshot=snapshot, name=writers.MANIFEST_FILE)
    if out.suffix.lower() in JSONL_SUFFIXES:
        out.parent.mkdir(parents=True, exist_ok=True)
        targets = [out, out.with_name(f"{out.stem}.{writers.CARD_FILE}"),
                   out.with_name(f"{out.stem}.{writers.MANIFEST_FILE}")]  # fmt: skip
        for src, target in zip((source, card, manifest), targets, strict=True):
            shutil.copyfile(src, target)
        return targets
    _folder_prepare(out)
    from annotation.io import hf  # imports `datasets` (slow): only for folders

    rows = [json.loads(line) for line in source.read_text("utf-8").splitlines()]
    hf.folder_save(rows, json.loads(manifest.read_text("utf-8"))["columns"], out)
    shutil.copyfile(card, out / writers.CARD_FILE)
    shutil.copyfile(manifest, out / writers.MANIFEST_FILE)
    return [out]


def export_rows_build(
    *, project: Project, fmt: ExportFormat, rules: ExportRules
) -> tuple[list[dict], dict]:
    """The rows of ``fmt`` and the counts for the dataset card (a read: writes nothing)."""
    accuracy = aggregate.gold_accuracy(_gold_answers(project))
    excluded = aggregate.gold_excluded(accuracy, rules)
    tally = _Tally()
    if fmt.objective == "dpo":
        rows = _dpo_rows(project, fmt, rules, excluded, tally)
    else:
        rows = _kto_rows(project, fmt, rules, excluded, tally)
    names = get_user_model().objects.filter(pk__in=excluded).order_by("username")
    counts = {
        "rows": len(rows),
        "candidates": dict(tally.candidates),
        "dropped": dict(sorted(tally.dropped.items())),
        "votes_counted": tally.votes,
        "annotators_excluded": list(names.values_list("username", flat=True)),
    }
    return rows, counts


class _Tally:
    def __init__(self) -> None:
        self.candidates: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.votes = 0


def _dpo_rows(project, fmt: ExportFormat, rules: ExportRules, excluded, tally) -> list[dict]:
    rows = []
    votes = _pairwise_votes(project)
    for task in _pairwise_tasks(project):
        tally.candidates["pairwise_tasks"] += 1
        if rules.split != "all" and task.prompt.split != rules.split:
            tally.dropped[f"{task.prompt.split}_split"] += 1
            continue
        outcome = aggregate.outcome_decide(
            aggregate.votes_counted(votes.get(task.pk, []), rules, excluded), rules
        )
        sides = aggregate.preference_sides(outcome)
        prompt = writers.prompt_value(task.prompt.messages, fmt.conversational)
        if isinstance(sides, str) or prompt is None:
            tally.dropped[sides if isinstance(sides, str) else writers.MULTI_TURN_PROMPT] += 1
            continue
        replies = {"a": task.response_a.text, "b": task.response_b.text}
        cells = {
            "prompt": prompt,
            "chosen": writers.reply_value(replies[sides[0]], fmt.conversational),
            "rejected": writers.reply_value(replies[sides[1]], fmt.conversational),
        }
        rows.append(writers.row_build(fmt, rules, cells, _meta(outcome, task_id=task.pk)))
        tally.votes += outcome.votes
    return rows


def _kto_rows(project, fmt: ExportFormat, rules: ExportRules, excluded, tally) -> list[dict]:
    rows: list[dict] = []
    seen: set[tuple[int, bool]] = set()

    def add(response: Response, label: bool, meta: dict) -> None:
        prompt = writers.prompt_value(response.prompt.messages, fmt.conversational)
        if prompt is None:
            tally.dropped[writers.MULTI_TURN_PROMPT] += 1
        elif (response.pk, label) in seen:
            tally.dropped[writers.DUPLICATE] += 1
        else:
            seen.add((response.pk, label))
            completion = writers.reply_value(response.text, fmt.conversational)
            cells = {"prompt": prompt, "completion": completion, "label": label}
            rows.append(
                writers.row_build(fmt, rules, cells, {**meta, "prefloop_response_id": response.pk})
            )

    if rules.kto_sources in ("both", "feedback"):
        _kto_from_feedback(project, rules, excluded, tally, add)
    if rules.kto_sources in ("both", "pairwise"):
        _kto_from_pairwise(project, rules, excluded, tally, add)
    return rows


def _kto_from_feedback(project, rules: ExportRules, excluded, tally, add) -> None:
    votes: dict[int, list[Vote]] = {}
    task_of: dict[int, int | None] = {}
    for response_id, task_id, annotator_id, up, source in Feedback.objects.filter(
        response__prompt__project=project
    ).values_list("response_id", "task_id", "annotator_id", "thumbs_up", "source"):
        votes.setdefault(response_id, []).append(
            Vote(annotator_id, "up" if up else "down", 1, source)
        )
        task_of[response_id] = task_of.get(response_id) or task_id
    judged = Response.objects.filter(prompt__project=project, feedback__isnull=False).distinct()
    for response in judged.select_related("prompt").order_by("pk"):
        tally.candidates["responses_with_feedback"] += 1
        if rules.split != "all" and response.prompt.split != rules.split:
            tally.dropped[f"{response.prompt.split}_split"] += 1
            continue
        counted = aggregate.votes_counted(votes[response.pk], rules, excluded)
        outcome = aggregate.outcome_decide(counted, rules)
        if outcome.dropped:
            tally.dropped[outcome.dropped] += 1
            continue
        tally.votes += outcome.votes
        meta = _meta(outcome, task_id=task_of[response.pk], source="feedback")
        add(response, outcome.verdict == "up", meta)


def _kto_from_pairwise(project, rules: ExportRules, excluded, tally, add) -> None:
    votes = _pairwise_votes(project)
    for task in _pairwise_tasks(project):
        tally.candidates["pairwise_tasks"] += 1
        if rules.split != "all" and task.prompt.split != rules.split:
            tally.dropped[f"{task.prompt.split}_split"] += 1
            continue
        counted = aggregate.votes_counted(votes.get(task.pk, []), rules, excluded)
        outcome = aggregate.outcome_decide(counted, rules)
        labels = aggregate.pairwise_labels(outcome, rules)
        if isinstance(labels, str):
            tally.dropped[labels] += 1
            continue
        tally.votes += outcome.votes
        responses = {"a": task.response_a, "b": task.response_b}
        for side, label in labels:
            add(responses[side], label, _meta(outcome, task_id=task.pk, source="pairwise"))


def _meta(outcome: aggregate.Outcome, *, task_id: int | None, source: str = "") -> dict:
    meta = {"prefloop_task_id": task_id, "agreement": round(outcome.agreement, 4),
            "n_votes": outcome.votes}  # fmt: skip
    return {**meta, "prefloop_from": source} if source else meta


def _pairwise_tasks(project: Project) -> QuerySet[Task]:
    return (
        Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE)
        .select_related("prompt", "response_a", "response_b")
        .order_by("pk")
    )


def _pairwise_votes(project: Project) -> dict[int, list[Vote]]:
    votes: dict[int, list[Vote]] = {}
    for task_id, annotator_id, choice, strength, source in Judgment.objects.filter(
        task__project=project, task__kind=Task.Kind.PAIRWISE
    ).values_list("task_id", "annotator_id", "choice", "strength", "source"):
        votes.setdefault(task_id, []).append(Vote(annotator_id, choice, strength, source))
    return votes


def _gold_answers(project: Project) -> list[tuple[int, bool]]:
    """(annotator, correct) for every answer on a gold item with a known answer."""
    gold = {"task__project": project, "task__is_gold": True}
    answers = [
        (annotator_id, choice == expected)
        for annotator_id, choice, expected in Judgment.objects.filter(**gold)
        .exclude(task__gold_answer="")
        .values_list("annotator_id", "choice", "task__gold_answer")
    ]
    answers += [
        (annotator_id, ("up" if up else "down") == expected)
        for annotator_id, up, expected in Feedback.objects.filter(**gold)
        .exclude(task__gold_answer="")
        .values_list("annotator_id", "thumbs_up", "task__gold_answer")
    ]
    return answers


def _folder_prepare(out: Path) -> None:
    """A datasets folder is written only where nothing but an earlier export lives."""
    if out.exists() and not out.is_dir():
        raise ApplicationError(f"{out} is a file; give a .jsonl path or a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / writers.MANIFEST_FILE).is_file():
            raise ApplicationError(f"refusing to write into {out}: the folder is not empty")
        shutil.rmtree(out)
