"""Votes → one verdict per task (pairwise) or per response (thumbs), under ``ExportRules``.

Pure functions over plain records: the export service loads the votes, these
functions decide, and every dropped item carries a reason that the dataset card counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from annotation.io.rules import ExportRules

# Reasons an item yields no row (keys of the "dropped" counts in the dataset card).
NO_VOTES = "no_votes"
TOO_FEW_VOTES = "too_few_votes"
SPLIT_VOTE = "split_vote"
LOW_AGREEMENT = "low_agreement"
TIE = "tie"
BOTH_BAD = "both_bad"


@dataclass(frozen=True)
class Vote:
    annotator_id: int
    choice: str  # pairwise: a / b / tie / both_bad; thumbs: up / down
    strength: int = 1
    source: str = "human"


@dataclass(frozen=True)
class Outcome:
    verdict: str | None  # the winning choice, None when dropped before a verdict
    dropped: str | None = None
    agreement: float = 0.0
    votes: int = 0


def votes_counted(votes: Iterable[Vote], rules: ExportRules, excluded: set[int]) -> list[Vote]:
    """The votes the rules let through (source filters, gold-failing annotators)."""
    return [
        v
        for v in votes
        if v.annotator_id not in excluded
        and (rules.include_ai or v.source != "ai")
        and (rules.include_imported or v.source != "imported")
    ]


def outcome_decide(votes: list[Vote], rules: ExportRules) -> Outcome:
    """Weighted plurality; an even split between the top choices decides nothing."""
    if not votes:
        return Outcome(None, NO_VOTES)
    if len(votes) < rules.min_judgments:
        return Outcome(None, TOO_FEW_VOTES, votes=len(votes))
    weights: Counter[str] = Counter()
    for vote in votes:
        weighted = rules.vote == "strength" and vote.choice in ("a", "b")
        weights[vote.choice] += max(vote.strength, 1) if weighted else 1
    top = max(weights.values())
    agreement = top / sum(weights.values())
    winners = [choice for choice, weight in weights.items() if weight == top]
    if len(winners) > 1:
        return Outcome(None, SPLIT_VOTE, agreement, len(votes))
    if agreement < rules.min_agreement:
        return Outcome(None, LOW_AGREEMENT, agreement, len(votes))
    return Outcome(winners[0], None, agreement, len(votes))


def preference_sides(outcome: Outcome) -> tuple[str, str] | str:
    """DPO: ``(chosen side, rejected side)``, or the reason the task is dropped."""
    if outcome.dropped:
        return outcome.dropped
    if outcome.verdict == "a":
        return ("a", "b")
    if outcome.verdict == "b":
        return ("b", "a")
    return TIE if outcome.verdict == "tie" else BOTH_BAD


def pairwise_labels(outcome: Outcome, rules: ExportRules) -> list[tuple[str, bool]] | str:
    """KTO from a pairwise verdict: ``[(side, desirable), ...]``, or the drop reason."""
    sides = preference_sides(outcome)
    if isinstance(sides, tuple):
        return [(sides[0], True), (sides[1], False)]
    if sides == TIE and rules.ties == "desirable":
        return [("a", True), ("b", True)]
    if sides == BOTH_BAD and rules.both_bad == "undesirable":
        return [("a", False), ("b", False)]
    return sides


def gold_accuracy(answers: Iterable[tuple[int, bool]]) -> dict[int, tuple[int, int]]:
    """``annotator id -> (correct, answered)`` on gold items."""
    tally: dict[int, list[int]] = {}
    for annotator_id, correct in answers:
        counts = tally.setdefault(annotator_id, [0, 0])
        counts[0] += int(correct)
        counts[1] += 1
    return {annotator_id: (c, n) for annotator_id, (c, n) in tally.items()}


def gold_excluded(accuracy: dict[int, tuple[int, int]], rules: ExportRules) -> set[int]:
    """Annotators with enough gold answers and an accuracy below the threshold."""
    if rules.min_gold_accuracy is None:
        return set()
    return {
        annotator_id
        for annotator_id, (correct, answered) in accuracy.items()
        if answered >= rules.min_gold_answers and correct / answered < rules.min_gold_accuracy
    }
