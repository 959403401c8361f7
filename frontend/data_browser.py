"""Reads for the data browser: judgments under filters, keyset-paged, and one item.

Paging is by keyset, never OFFSET: a page is "the newest ``PAGE_SIZE`` judgments with
``pk < after``", so page 500 costs what page 1 costs (an index range scan on the
primary key) however many rows the project holds. The "next" link carries the last
primary key of the page shown.

Agreement is per judgment: *low* when another verdict on the same task chose
differently, *high* when at least one other verdict agrees and none disagrees.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet

from annotation.models import Judgment, JudgmentFlag, Project, Task

PAGE_SIZE = 50
SOURCES = tuple(Judgment.Source.values)
AGREEMENT = ("low", "high")


@dataclass(frozen=True)
class BrowserFilters:
    split: str = ""
    tag: str = ""
    model_version: str = ""
    source: str = ""
    agreement: str = ""
    annotator: str = ""
    has_rationale: bool = False
    flagged: bool = False

    @classmethod
    def from_query(cls, query) -> BrowserFilters:
        def pick(name: str, allowed: tuple[str, ...] | None = None) -> str:
            value = (query.get(name) or "").strip()[:200]
            return value if allowed is None or value in allowed else ""

        return cls(
            split=pick("split", ("train", "eval")), tag=pick("tag"),
            model_version=pick("model_version"), source=pick("source", SOURCES),
            agreement=pick("agreement", AGREEMENT), annotator=pick("annotator"),
            has_rationale=query.get("has_rationale") == "1", flagged=query.get("flagged") == "1",
        )

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (what the keyset links repeat)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {k: ("1" if v is True else v) for k, v in values.items() if v}


@dataclass
class BrowserPage:
    rows: list[Judgment]
    next_after: int | None
    filters: BrowserFilters
    after: int | None = None
    open_flags: set[int] = field(default_factory=set)


def _other_verdicts(**condition) -> Exists:
    return Exists(
        Judgment.objects.filter(task_id=OuterRef("task_id"), **condition).exclude(pk=OuterRef("pk"))
    )


def judgments_filtered(*, project: Project, filters: BrowserFilters) -> QuerySet[Judgment]:
    qs = Judgment.objects.filter(task__project=project)
    f = filters
    if f.split:
        qs = qs.filter(task__prompt__split=f.split)
    if f.tag:
        qs = qs.filter(task__prompt__tags__icontains=json.dumps(f.tag))
    if f.model_version:
        name = f.model_version
        qs = qs.filter(
            Q(task__response_a__model_version__name=name)
            | Q(task__response_b__model_version__name=name)
        )
    if f.source:
        qs = qs.filter(source=f.source)
    if f.annotator:
        qs = qs.filter(annotator__username=f.annotator)
    if f.has_rationale:
        qs = qs.exclude(rationale="")
    if f.flagged:
        open_flags = JudgmentFlag.objects.filter(cleared_at__isnull=True)
        qs = qs.filter(pk__in=open_flags.values("judgment_id"))
    if f.agreement == "low":
        qs = qs.filter(_disagreeing())
    elif f.agreement == "high":
        qs = qs.filter(_other_verdicts(choice=OuterRef("choice"))).exclude(_disagreeing())
    return qs


def _disagreeing() -> Exists:
    return Exists(
        Judgment.objects.filter(task_id=OuterRef("task_id")).exclude(choice=OuterRef("choice"))
    )


def judgment_page(
    *, project: Project, filters: BrowserFilters, after: int | None = None
) -> BrowserPage:
    """One page of judgments, newest first, starting below primary key ``after``."""
    qs = judgments_filtered(project=project, filters=filters)
    if after is not None:
        qs = qs.filter(pk__lt=after)
    else:  # the same primary-key range scan as every later page (SQLite sorted otherwise)
        newest = Judgment.objects.order_by("-pk").values_list("pk", flat=True).first()
        qs = qs.filter(pk__lte=newest or 0)
    rows = list(qs.select_related("annotator", "task__prompt").order_by("-pk")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    flagged = set(
        JudgmentFlag.objects.filter(
            judgment_id__in=[r.pk for r in rows], cleared_at__isnull=True
        ).values_list("judgment_id", flat=True)
    )
    return BrowserPage(rows=rows, next_after=rows[-1].pk if more else None, filters=filters,
                       after=after, open_flags=flagged)


@dataclass
class VerdictRow:
    judgment: Judgment
    flags: list[JudgmentFlag]

    @property
    def flagged(self) -> bool:
        return any(flag.cleared_at is None for flag in self.flags)


@dataclass
class ItemDetail:
    task: Task
    verdicts: list[VerdictRow]


def item_detail(*, project: Project, task_id: int) -> ItemDetail | None:
    """A task with both responses, every verdict (rationale, soft label, principles)
    and every flag ever raised on them (open or cleared)."""
    task = (
        Task.objects.filter(project=project, pk=task_id)
        .select_related("prompt", "response_a__model_version", "response_b__model_version")
        .first()
    )
    if task is None:
        return None
    flags: dict[int, list[JudgmentFlag]] = {}
    for flag in (
        JudgmentFlag.objects.filter(judgment__task=task)
        .select_related("flagged_by", "cleared_by")
        .order_by("created_at", "pk")
    ):
        flags.setdefault(flag.judgment_id, []).append(flag)
    verdicts = task.judgments.select_related("annotator").order_by("pk")
    return ItemDetail(task=task, verdicts=[VerdictRow(j, flags.get(j.pk, [])) for j in verdicts])
