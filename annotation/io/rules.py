"""``ExportRules``: every choice that turns judgments into training rows, in one place.

The rules are recorded with each export snapshot and in its dataset card, so a
training run can always say how its data was aggregated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

VOTES = ("majority", "strength")
TIES = ("drop", "desirable")
BOTH_BAD = ("drop", "undesirable")
SPLITS = ("train", "eval", "all")
KTO_SOURCES = ("both", "feedback", "pairwise")


@dataclass(frozen=True)
class ExportRules:
    """How judgments and thumbs are aggregated into rows (defaults are the safe choices).

    vote: ``majority`` (one vote per judgment) or ``strength`` (an A/B vote weighs its
        strength, 1..project scale; tie and both-bad votes weigh 1).
    min_judgments: tasks (or responses, for thumbs) with fewer counted votes are dropped.
    min_agreement: the winner's share of the counted (weighted) votes must reach this.
    ties: a task whose verdict is "tie" is dropped; for KTO ``desirable`` keeps both
        responses as desirable. DPO always drops ties (there is no chosen side).
    both_bad: dropped; for KTO ``undesirable`` keeps both responses as undesirable.
    min_gold_accuracy: annotators with at least ``min_gold_answers`` answers on gold
        items and a lower accuracy are left out entirely (None: nobody is left out).
    include_ai / include_imported: count AI-judge / imported verdicts.
    split: which prompts to export: ``train`` (default; eval prompts are held out),
        ``eval`` (only the held-out prompts) or ``all``.
    kto_sources: KTO rows from thumbs ``feedback``, from ``pairwise`` verdicts
        (chosen → desirable, rejected → undesirable), or ``both``.
    metadata_columns: add prefloop_* / agreement / n_votes columns next to TRL's.
    """

    vote: str = "majority"
    min_judgments: int = 1
    min_agreement: float = 0.0
    ties: str = "drop"
    both_bad: str = "drop"
    min_gold_accuracy: float | None = None
    min_gold_answers: int = 3
    include_ai: bool = True
    include_imported: bool = True
    split: str = "train"
    kto_sources: str = "both"
    metadata_columns: bool = True

    def __post_init__(self) -> None:
        for name, allowed in (
            ("vote", VOTES), ("ties", TIES), ("both_bad", BOTH_BAD),
            ("split", SPLITS), ("kto_sources", KTO_SOURCES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"rule {name} must be one of {', '.join(allowed)}")
        for name in ("include_ai", "include_imported", "metadata_columns"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"rule {name} must be true or false")
        for name in ("min_judgments", "min_gold_answers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"rule {name} must be an integer of at least 1")
        _fraction_check("min_agreement", self.min_agreement)
        if self.min_gold_accuracy is not None:
            _fraction_check("min_gold_accuracy", self.min_gold_accuracy)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExportRules:
        """Build from JSON-like input; unknown names are an error, not silently ignored."""
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError("rules must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown rule(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fraction_check(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"rule {name} must be a number between 0 and 1")
