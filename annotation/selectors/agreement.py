"""Inter-annotator agreement: Krippendorff's alpha, Fleiss' and Cohen's kappa, and
each annotator's agreement with the leave-one-out consensus.

Scales. A pairwise verdict is placed on a signed ordinal scale: A better by
strength s is ``+s``, B better is ``-s``, a tie is ``0``. **Both-bad has no place
on that scale** (it says nothing about which response is better), so the
ordinal alpha treats it as a missing value and reports how many were left out;
the nominal statistics (nominal alpha, Fleiss, Cohen, consensus) keep it as a
fourth category. Thumbs feedback is nominal (up / down).

The maths is done by maintained libraries (``krippendorff``, ``statsmodels``);
this module only shapes the data. Statistics that are undefined for the data
(one unit, no variation) come back as ``None``.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import krippendorff
import numpy as np
from statsmodels.stats import inter_rater

from annotation.models import Feedback, Judgment, Project, Task

DEFAULT_SOURCES = (Judgment.Source.HUMAN, Judgment.Source.AI)
PAIRWISE_CATEGORIES = ("a", "b", "tie", "both_bad")
BINARY_CATEGORIES = ("up", "down")


@dataclass(frozen=True)
class Verdict:
    """One annotator's verdict on one task, as the quality selectors need it."""

    task_id: int
    annotator_id: int
    username: str
    category: str  # a / b / tie / both_bad, or up / down
    strength: int
    shown_left: str
    time_spent_ms: int | None
    is_gold: bool
    gold_answer: str


def pairwise_verdicts(
    *, project: Project, sources: Sequence[str] = DEFAULT_SOURCES
) -> list[Verdict]:
    rows = Judgment.objects.filter(task__project=project, source__in=sources).values_list(
        "task_id", "annotator_id", "annotator__username", "choice", "strength",
        "shown_left", "time_spent_ms", "task__is_gold", "task__gold_answer",
    )
    return [Verdict(*row) for row in rows]


def binary_verdicts(*, project: Project, sources: Sequence[str] = DEFAULT_SOURCES) -> list[Verdict]:
    rows = Feedback.objects.filter(
        task__project=project, task__kind=Task.Kind.BINARY, source__in=sources
    ).values_list(
        "task_id", "annotator_id", "annotator__username", "thumbs_up",
        "time_spent_ms", "task__is_gold", "task__gold_answer",
    )
    return [
        Verdict(task, who, name, "up" if up else "down", 0, "", ms, gold, answer)
        for task, who, name, up, ms, gold, answer in rows
    ]


def ordinal_value(*, choice: str, strength: int) -> int | None:
    """Signed preference: ``+s`` for A, ``-s`` for B, 0 for a tie, None for both-bad."""
    if choice == "a":
        return max(strength, 1)
    if choice == "b":
        return -max(strength, 1)
    return 0 if choice == "tie" else None


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def krippendorff_alpha(
    *, units: Iterable[tuple[Hashable, Hashable]], domain: Sequence, level: str
) -> float | None:
    """Alpha from ``(unit, value)`` pairs; values outside ``domain`` (e.g. None) are missing."""
    index = {value: k for k, value in enumerate(domain)}
    counts: dict[Hashable, np.ndarray] = defaultdict(lambda: np.zeros(len(domain), dtype=int))
    for unit, value in units:
        if value in index:
            counts[unit][index[value]] += 1
    table = np.array([row for row in counts.values() if row.sum() >= 2])
    if len(table) == 0:
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            alpha = krippendorff.alpha(
                value_counts=table, value_domain=list(domain), level_of_measurement=level
            )
        except ValueError:  # the library's word for "undefined for this data"
            return None
    return _finite(alpha)


def fleiss_kappa(
    *, units: Iterable[tuple[Hashable, str]], categories: Sequence[str]
) -> tuple[float | None, int, int]:
    """Fleiss' kappa over the tasks that share the most common number of raters (>= 2),
    since the statistic needs the same count per task. Returns (kappa, tasks, raters)."""
    counts: dict[Hashable, Counter] = defaultdict(Counter)
    for unit, category in units:
        counts[unit][category] += 1
    sizes = Counter(sum(c.values()) for c in counts.values() if sum(c.values()) >= 2)
    if not sizes:
        return None, 0, 0
    raters = max(sizes, key=lambda n: (sizes[n], n))
    table = np.array(
        [[c[k] for k in categories] for c in counts.values() if sum(c.values()) == raters]
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = inter_rater.fleiss_kappa(table, method="fleiss")
    return _finite(kappa), len(table), raters


@dataclass(frozen=True)
class PairKappa:
    annotator_a: str
    annotator_b: str
    n_common: int
    kappa: float | None


def pair_annotators(*, verdicts: Sequence[Verdict], max_annotators: int) -> list[str]:
    """The annotators whose pairs are compared: everyone, or past ``max_annotators``
    (``PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS``) the ones with the most verdicts (ties by
    name), since the number of pairs grows with the square of the annotators."""
    counts = Counter(v.username for v in verdicts)
    ranked = sorted(counts, key=lambda name: (-counts[name], name))
    return sorted(ranked[:max_annotators])


def cohen_kappa_pairs(
    *,
    verdicts: Sequence[Verdict],
    categories: Sequence[str],
    min_common: int = 2,
    max_annotators: int | None = None,
) -> list[PairKappa]:
    """Cohen's kappa for every pair of annotators with ``min_common`` shared tasks
    (among the ``pair_annotators`` when ``max_annotators`` is given)."""
    by_annotator: dict[str, dict[int, str]] = defaultdict(dict)
    for v in verdicts:
        by_annotator[v.username][v.task_id] = v.category
    names = sorted(by_annotator)
    if max_annotators is not None and len(names) > max_annotators:
        names = pair_annotators(verdicts=verdicts, max_annotators=max_annotators)
    index = {k: i for i, k in enumerate(categories)}
    pairs = []
    for a, b in itertools.combinations(names, 2):
        common = by_annotator[a].keys() & by_annotator[b].keys()
        if len(common) < min_common:
            continue
        table = np.zeros((len(categories), len(categories)))
        for task in common:
            table[index[by_annotator[a][task]], index[by_annotator[b][task]]] += 1
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            kappa = inter_rater.cohens_kappa(table, return_results=False)
        pairs.append(PairKappa(a, b, len(common), _finite(kappa)))
    return pairs


def consensus_agreement(*, verdicts: Sequence[Verdict]) -> dict[int, tuple[int, int]]:
    """Per annotator: (verdicts matching the others' majority, verdicts with a majority).

    The consensus for one annotator's verdict excludes that verdict (leave one out);
    tasks where the others are split evenly have no consensus and are not counted.
    """
    by_task: dict[int, Counter] = defaultdict(Counter)
    for v in verdicts:
        by_task[v.task_id][v.category] += 1
    tally: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for v in verdicts:
        others = by_task[v.task_id].copy()
        others[v.category] -= 1
        ranked = [kv for kv in others.most_common() if kv[1] > 0]
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            continue
        tally[v.annotator_id][0] += ranked[0][0] == v.category
        tally[v.annotator_id][1] += 1
    return {who: (agree, n) for who, (agree, n) in tally.items()}


def task_majority_shares(*, project: Project) -> dict[int, float]:
    """Per task with verdicts: the share of the most common answer (1.0 = unanimous)."""
    by_task: dict[int, Counter] = defaultdict(Counter)
    for v in pairwise_verdicts(project=project) + binary_verdicts(project=project):
        by_task[v.task_id][v.category] += 1
    return {task: max(c.values()) / sum(c.values()) for task, c in by_task.items()}
