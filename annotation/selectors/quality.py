"""Quality dashboard for one project: agreement, position bias, time on task, gold.

``quality_report`` reads the project's verdicts with two queries and computes
everything from them in memory. Reports name annotators, so only owners and
reviewers may read them (see ``annotation.permissions``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from scipy import stats

from annotation.models import Project
from annotation.selectors import agreement
from annotation.selectors.agreement import (
    BINARY_CATEGORIES,
    DEFAULT_SOURCES,
    PAIRWISE_CATEGORIES,
    PairKappa,
    Verdict,
)


@dataclass(frozen=True)
class AnnotatorAgreement:
    annotator_id: int
    username: str
    n_verdicts: int
    consensus_n: int
    consensus_agreement: float | None
    mean_cohen_kappa: float | None


@dataclass(frozen=True)
class KindAgreement:
    n_verdicts: int
    n_tasks_multi: int  # tasks with two or more verdicts
    alpha_ordinal: float | None  # pairwise only; both-bad left out (see agreement.py)
    alpha_nominal: float | None
    both_bad_excluded: int
    fleiss_kappa: float | None
    fleiss_n_tasks: int
    fleiss_n_raters: int
    pairs: list[PairKappa]
    annotators: list[AnnotatorAgreement]
    # None: every pair of annotators is in ``pairs``; else only the pairs among this many
    # annotators, those with the most verdicts (PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS).
    pairs_annotators_limit: int | None = None


@dataclass(frozen=True)
class PositionBias:
    annotator_id: int | None  # None: every annotator together
    username: str
    n_decisive: int  # verdicts that picked a side (not tie / both-bad)
    left_picks: int
    left_share: float
    p_value: float  # two-sided binomial test against 0.5


@dataclass(frozen=True)
class TimeOnTask:
    kind: str
    annotator_id: int | None
    username: str
    n: int
    median_ms: float
    mean_ms: float
    p10_ms: float
    p90_ms: float


@dataclass(frozen=True)
class GoldAccuracy:
    annotator_id: int
    username: str
    n_gold: int
    n_correct: int
    accuracy: float


@dataclass(frozen=True)
class QualityReport:
    pairwise: KindAgreement
    binary: KindAgreement
    position_bias: list[PositionBias]
    time_on_task: list[TimeOnTask]
    gold: list[GoldAccuracy]


def kind_agreement(
    *, verdicts: Sequence[Verdict], categories: Sequence[str], ordinal_levels: int | None = None
) -> KindAgreement:
    """Agreement for one task kind; ``ordinal_levels`` (the strength scale) adds ordinal alpha."""
    per_task = defaultdict(int)
    for v in verdicts:
        per_task[v.task_id] += 1
    alpha_ordinal, both_bad = None, 0
    if ordinal_levels:
        levels = max([ordinal_levels] + [v.strength for v in verdicts])
        values = [(v.task_id, agreement.ordinal_value(choice=v.category, strength=v.strength))
                  for v in verdicts]
        both_bad = sum(value is None for _, value in values)
        alpha_ordinal = agreement.krippendorff_alpha(
            units=values, domain=range(-levels, levels + 1), level="ordinal"
        )
    nominal = [(v.task_id, v.category) for v in verdicts]
    kappa, fleiss_tasks, fleiss_raters = agreement.fleiss_kappa(
        units=nominal, categories=categories
    )
    limit = settings.PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS
    capped = len({v.annotator_id for v in verdicts}) > limit
    pairs = agreement.cohen_kappa_pairs(
        verdicts=verdicts, categories=categories, max_annotators=limit
    )
    return KindAgreement(
        n_verdicts=len(verdicts),
        n_tasks_multi=sum(n >= 2 for n in per_task.values()),
        alpha_ordinal=alpha_ordinal,
        alpha_nominal=agreement.krippendorff_alpha(
            units=nominal, domain=categories, level="nominal"
        ),
        both_bad_excluded=both_bad,
        fleiss_kappa=kappa,
        fleiss_n_tasks=fleiss_tasks,
        fleiss_n_raters=fleiss_raters,
        pairs=pairs,
        annotators=_annotator_agreement(verdicts=verdicts, pairs=pairs),
        pairs_annotators_limit=limit if capped else None,
    )


def _annotator_agreement(
    *, verdicts: Sequence[Verdict], pairs: list[PairKappa]
) -> list[AnnotatorAgreement]:
    consensus = agreement.consensus_agreement(verdicts=verdicts)
    kappas: dict[str, list[float]] = defaultdict(list)
    for pair in pairs:
        if pair.kappa is not None:
            kappas[pair.annotator_a].append(pair.kappa)
            kappas[pair.annotator_b].append(pair.kappa)
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for v in verdicts:
        counts[(v.annotator_id, v.username)] += 1
    rows = []
    for (who, name), n in sorted(counts.items(), key=lambda item: item[0][1]):
        agree, n_consensus = consensus.get(who, (0, 0))
        rows.append(
            AnnotatorAgreement(
                annotator_id=who,
                username=name,
                n_verdicts=n,
                consensus_n=n_consensus,
                consensus_agreement=agree / n_consensus if n_consensus else None,
                mean_cohen_kappa=float(np.mean(kappas[name])) if kappas[name] else None,
            )
        )
    return rows


def _bias_row(who: int | None, name: str, picks: list[bool]) -> PositionBias:
    left = int(sum(picks))
    test = stats.binomtest(left, len(picks), p=0.5, alternative="two-sided")
    return PositionBias(who, name, len(picks), left, left / len(picks), float(test.pvalue))


def position_bias(*, verdicts: Sequence[Verdict]) -> list[PositionBias]:
    """How often each annotator picked the side shown on the LEFT, with a binomial test."""
    picks: dict[tuple[int, str], list[bool]] = defaultdict(list)
    for v in verdicts:
        if v.category in ("a", "b"):
            picks[(v.annotator_id, v.username)].append(v.category == v.shown_left)
    rows = [
        _bias_row(who, name, p) for (who, name), p in sorted(picks.items(), key=lambda i: i[0][1])
    ]
    everyone = [p for group in picks.values() for p in group]
    return ([_bias_row(None, "(all)", everyone)] if everyone else []) + rows


def _time_row(kind: str, who: int | None, name: str, times: list[int]) -> TimeOnTask:
    a = np.asarray(times, dtype=float)
    p10, median, p90 = np.percentile(a, [10, 50, 90])
    return TimeOnTask(
        kind, who, name, len(a), float(median), float(a.mean()), float(p10), float(p90)
    )


def time_on_task(*, verdicts: Sequence[Verdict], kind: str) -> list[TimeOnTask]:
    times: dict[tuple[int, str], list[int]] = defaultdict(list)
    for v in verdicts:
        if v.time_spent_ms is not None:
            times[(v.annotator_id, v.username)].append(v.time_spent_ms)
    rows = [
        _time_row(kind, who, name, t)
        for (who, name), t in sorted(times.items(), key=lambda i: i[0][1])
    ]
    everyone = [t for group in times.values() for t in group]
    return ([_time_row(kind, None, "(all)", everyone)] if everyone else []) + rows


def gold_accuracy(*, verdicts: Sequence[Verdict]) -> list[GoldAccuracy]:
    """Accuracy on gold tasks (pairwise answers a / b / tie / both_bad; binary up / down)."""
    tally: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for v in verdicts:
        if v.is_gold and v.gold_answer:
            tally[(v.annotator_id, v.username)][0] += 1
            tally[(v.annotator_id, v.username)][1] += v.category == v.gold_answer
    return [
        GoldAccuracy(who, name, n, correct, correct / n)
        for (who, name), (n, correct) in sorted(tally.items(), key=lambda i: i[0][1])
    ]


def quality_report(*, project: Project, sources: Sequence[str] = DEFAULT_SOURCES) -> QualityReport:
    pairwise = agreement.pairwise_verdicts(project=project, sources=sources)
    binary = agreement.binary_verdicts(project=project, sources=sources)
    return QualityReport(
        pairwise=kind_agreement(
            verdicts=pairwise,
            categories=PAIRWISE_CATEGORIES,
            ordinal_levels=project.strength_levels,
        ),
        binary=kind_agreement(verdicts=binary, categories=BINARY_CATEGORIES),
        position_bias=position_bias(verdicts=pairwise),
        time_on_task=time_on_task(verdicts=pairwise, kind="pairwise")
        + time_on_task(verdicts=binary, kind="binary"),
        gold=gold_accuracy(verdicts=pairwise + binary),
    )
