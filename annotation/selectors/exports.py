"""Reads of exports: snapshots by hash or project, and the training rows of a project.

``export_rows_build`` turns a project's verdicts into TRL rows under ``ExportRules``
(aggregation, ties, gold filtering); the services in ``annotation.services.exports``
freeze those rows as snapshots, and a round (``training.rounds.snapshot``) narrows them.
"""

from __future__ import annotations

from collections import Counter

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from annotation.io import aggregate, writers
from annotation.io.aggregate import Vote
from annotation.io.rules import ExportRules
from annotation.io.writers import ExportFormat
from annotation.models import (
    ExportSnapshot,
    Feedback,
    Judgment,
    JudgmentFlag,
    Project,
    Response,
    Task,
)
from prefloop.exceptions import NotFoundError


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
        "judgments_flagged": _flagged(project).count(),
    }
    return rows, counts


def _flagged(project: Project) -> QuerySet[Judgment]:
    """The project's judgments with an open flag: no export counts them."""
    open_flags = JudgmentFlag.objects.filter(cleared_at__isnull=True).values("judgment_id")
    return Judgment.objects.filter(task__project=project, pk__in=open_flags)


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
            "n_votes": outcome.votes}
    return {**meta, "prefloop_from": source} if source else meta


def _pairwise_tasks(project: Project) -> QuerySet[Task]:
    return (
        Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE)
        .select_related("prompt", "response_a", "response_b")
        .order_by("pk")
    )


def _pairwise_votes(project: Project) -> dict[int, list[Vote]]:
    votes: dict[int, list[Vote]] = {}
    for task_id, annotator_id, choice, strength, source in (
        Judgment.objects.filter(task__project=project, task__kind=Task.Kind.PAIRWISE)
        .exclude(pk__in=_flagged(project).values("pk"))
        .values_list("task_id", "annotator_id", "choice", "strength", "source")
    ):
        votes.setdefault(task_id, []).append(Vote(annotator_id, choice, strength, source))
    return votes


def _gold_answers(project: Project) -> list[tuple[int, bool]]:
    """(annotator, correct) for every answer on a gold item with a known answer."""
    gold = {"task__project": project, "task__is_gold": True}
    answers = [
        (annotator_id, choice == expected)
        for annotator_id, choice, expected in Judgment.objects.filter(**gold)
        .exclude(task__gold_answer="")
        .exclude(pk__in=_flagged(project).values("pk"))
        .values_list("annotator_id", "choice", "task__gold_answer")
    ]
    answers += [
        (annotator_id, ("up" if up else "down") == expected)
        for annotator_id, up, expected in Feedback.objects.filter(**gold)
        .exclude(task__gold_answer="")
        .values_list("annotator_id", "thumbs_up", "task__gold_answer")
    ]
    return answers
