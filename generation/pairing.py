"""Pairing strategies: which of a prompt's responses become comparisons. Pure functions.

Every strategy takes response ids (distinct, in sample order) and returns ordered
pairs; the annotation queue randomises which side is shown on the left.

``best_vs_worst`` needs a score per response from a judge. Judges register a scorer
here (the AI-feedback app does, at start-up, in both web and worker processes):

    pairing.scorer_register("rm-v3", lambda *, prompt, responses: [...floats...])
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

Pair = tuple[int, int]
Scorer = Callable[..., list[float]]  # (*, prompt, responses) -> one score per response

SCORERS: dict[str, Scorer] = {}


def scorer_register(name: str, scorer: Scorer) -> None:
    SCORERS[name] = scorer


def pairs_random(ids: Sequence[int], *, seed: int) -> list[Pair]:
    """Disjoint random pairs (k responses give k // 2 pairs); repeatable for one seed."""
    shuffled = list(ids)
    random.Random(seed).shuffle(shuffled)
    return [(shuffled[i], shuffled[i + 1]) for i in range(0, len(shuffled) - 1, 2)]


def pairs_all(ids: Sequence[int]) -> list[Pair]:
    """Every unordered pair once: k responses give k (k - 1) / 2 pairs."""
    return list(itertools.combinations(ids, 2))


def pairs_head_to_head(ours: Sequence[int], theirs: Sequence[int]) -> list[Pair]:
    """Sample i of one model against sample i of the other; identical texts never pair."""
    return [(a, b) for a, b in zip(ours, theirs, strict=False) if a != b]


def pairs_best_vs_worst(ids: Sequence[int], scores: Sequence[float]) -> list[Pair]:
    """The highest-scored response against the lowest; none when all scores tie."""
    if len(ids) != len(scores):
        raise ValueError("one score per response is needed")
    if len(ids) < 2 or max(scores) == min(scores):
        return []
    ranked = sorted(zip(scores, ids, strict=True), key=lambda item: item[0])
    return [(ranked[-1][1], ranked[0][1])]
