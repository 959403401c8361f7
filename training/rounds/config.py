"""What a round is asked to do: one validated, typed bundle with the defaults in one place.

The API, the management command and the auto-start check all build a
:class:`RoundSettings` (``from_dict`` refuses unknown names), and ``round_create`` turns
it into a ``Round`` row. Defaults follow the demo recipe in DESIGN.md ("The demo task"):
4 samples per training prompt at temperature 1, every pair of them judged, reference =
the previous round; held-out accuracy from 8 samples per question at temperature 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from prefloop.exceptions import ApplicationError

ALGORITHMS = ("dpo", "ipo", "kto", "simpo", "orpo")
LABELLINGS = ("human", "ai", "programmatic", "mix")
DECIDERS = ("votes", "human")
REFERENCES = ("initial", "previous")
PARTIAL_POLICIES = ("proceed", "fail", "ai_fill")
DATA_SCOPES = ("round", "all")
LABEL_KINDS = ("", "pairwise", "thumbs")
PAIRINGS = ("", "all", "random", "best_vs_worst", "none")
DEMO_SCORER = "generation.feedback.judges.programmatic.demo_capital_score"
DEFAULT_JUDGE = {
    "human": "",
    "ai": "constitutional",
    "mix": "constitutional",
    "programmatic": f"programmatic:{DEMO_SCORER}",
}
MAX_ROUNDS = 50
MAX_DEADLINE_HOURS = 24 * 366 * 10


@dataclass(frozen=True)
class RoundSettings:
    algorithm: str = "dpo"
    labelling: str = "programmatic"
    judge: str = ""  # a judge spec (generation.feedback); "" = the labelling's default
    judge_model: str = ""  # model version of an LM judge; "" = the lineage's initial model
    eval_judge: str = ""  # "" = the labelling judge when it is an AI, else none
    decider: str = "votes"
    label_kind: str = ""  # "" = thumbs for KTO on a project with binary tasks, else pairwise
    reference: str = "previous"
    hyperparameters: dict = field(default_factory=dict)
    samples: int = 4  # candidates per prompt; 0 = no generation (train on existing labels)
    temperature: float = 1.0
    max_tokens: int = 32
    seed: int = 0
    pairing: str = ""  # "" = all (pairwise) / none (thumbs)
    tags: tuple[str, ...] = ()
    data_scope: str = "round"
    eval_samples: int = 8
    eval_temperature: float = 1.0
    eval_max_tokens: int = 32
    eval_seed: int = 1234
    bootstrap: int = 1000
    min_coverage: float = 1.0
    deadline_hours: float | None = None
    partial_policy: str = "proceed"
    rounds: int = 1
    min_pairs: int = 0  # fewer training rows: human rounds wait (until the deadline), else fail

    def __post_init__(self) -> None:
        choices = {
            "algorithm": ALGORITHMS, "labelling": LABELLINGS, "decider": DECIDERS,
            "reference": REFERENCES, "partial_policy": PARTIAL_POLICIES,
            "data_scope": DATA_SCOPES, "label_kind": LABEL_KINDS, "pairing": PAIRINGS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                shown = ", ".join(a for a in allowed if a)
                raise ApplicationError(f"{name} must be one of {shown}")
        _int_range("samples", self.samples, 0, 64)
        _int_range("eval_samples", self.eval_samples, 0, 64)
        _int_range("rounds", self.rounds, 1, MAX_ROUNDS)
        _int_range("bootstrap", self.bootstrap, 0, 100_000)
        _int_range("min_pairs", self.min_pairs, 0, 10_000_000)
        if not 0 < self.min_coverage <= 1:
            raise ApplicationError("min_coverage must be in (0, 1]")
        if self.deadline_hours is not None and not 0 < self.deadline_hours <= MAX_DEADLINE_HOURS:
            raise ApplicationError(f"deadline_hours must be in (0, {MAX_DEADLINE_HOURS}]")
        if not isinstance(self.hyperparameters, dict):
            raise ApplicationError("hyperparameters must be an object")
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.labelling != "human" and not self.judge_spec:
            raise ApplicationError(f"{self.labelling} labelling needs a judge")
        if self.labelling == "programmatic" and not self.judge_spec.startswith("programmatic:"):
            raise ApplicationError("programmatic labelling needs a programmatic:... judge")
        if self.partial_policy == "ai_fill" and not self.judge_spec:
            raise ApplicationError("partial_policy ai_fill needs a judge (--judge)")
        if self.label_kind == "thumbs" and self.algorithm != "kto":
            raise ApplicationError("thumbs labels train KTO only; use pairwise labels")

    @property
    def judge_spec(self) -> str:
        return self.judge or DEFAULT_JUDGE[self.labelling]

    @property
    def eval_judge_spec(self) -> str:
        return self.eval_judge or (self.judge_spec if self.labelling != "human" else "")

    def kind_for(self, *, binary_enabled: bool) -> str:
        if self.label_kind:
            return self.label_kind
        return "thumbs" if self.algorithm == "kto" and binary_enabled else "pairwise"

    def pairing_for(self, kind: str) -> str:
        return self.pairing or ("none" if kind == "thumbs" else "all")

    def sampling(self, index: int) -> dict[str, Any]:
        """Generation sampling of round ``index``: a new seed per round."""
        return {"n": self.samples, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "seed": self.seed + index}

    def evaluation(self) -> dict[str, Any]:
        """The same for every round of a lineage, so versions are compared like for like."""
        return {"samples": self.eval_samples, "temperature": self.eval_temperature,
                "max_tokens": self.eval_max_tokens, "seed": self.eval_seed,
                "bootstrap": self.bootstrap}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RoundSettings:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ApplicationError(f"unknown round setting(s) {unknown}; known: {sorted(known)}")
        texts = [f.name for f in fields(cls) if isinstance(f.default, str)]
        wrong = sorted(name for name in texts if not isinstance(data.get(name, ""), str))
        if wrong:
            raise ApplicationError(f"round setting(s) {wrong} must be strings")
        if "tags" in data:
            tags = data["tags"] or ()
            if not isinstance(tags, (list, tuple)) or not all(isinstance(t, str) for t in tags):
                raise ApplicationError("tags must be a list of strings")
            data["tags"] = tuple(tags)
        try:
            return cls(**data)
        except TypeError as exc:
            raise ApplicationError(f"invalid round settings: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data


def _int_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApplicationError(f"{name} must be an integer from {low} to {high}")
