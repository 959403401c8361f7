"""The seeded generator of instruction-following prompts, with train and held-out splits.

Each prompt is a request for a short piece of writing about a topic plus one to three
compatible constraints from :mod:`generation.instruct.constraints`. The same seed
always gives the same prompts; the split is decided by a stable shuffle, so the
held-out prompts never change when more prompts are asked for.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from generation.instruct.constraints import KINDS, compatible, instruction

TOPICS = (
    "the ocean", "coffee", "bicycles", "a rainy day", "libraries", "volcanoes", "honeybees",
    "the moon", "trains", "gardening", "chess", "winter", "bread", "rivers", "lighthouses",
    "owls", "deserts", "music lessons", "a first job", "recycling", "kites", "mountains",
    "tea", "city parks", "friendship", "old maps", "robots", "sunflowers", "museums",
    "camping", "snow", "birthdays", "clocks", "forests", "the post office", "penguins",
    "thunderstorms", "board games", "a quiet morning", "bridges",
)
REQUESTS = (
    "Write a short note about {topic}.",
    "Describe {topic} to a child.",
    "Give some advice about {topic}.",
    "Explain why {topic} matters to people.",
    "Tell me something interesting about {topic}.",
    "Write a short product-style description of {topic}.",
)
KEYWORDS = ("bright", "simple", "careful", "journey", "quiet", "history", "friendly", "water")
PHRASES = ("That is all.", "Thank you for reading.", "Any other questions?")
JSON_KEYS = (("title", "summary"), ("topic", "fact"), ("name", "reason", "score"))
STARTS = ("Today", "Imagine", "Yes", "First")


@dataclass(frozen=True)
class InstructPrompt:
    text: str
    constraints: list[dict[str, Any]] = field(default_factory=list)
    split: str = "train"
    index: int = 0
    seed: int = 0

    def metadata(self) -> dict[str, Any]:
        return {"instruct": {"constraints": self.constraints, "index": self.index,
                             "seed": self.seed, "split": self.split}}


def _constraint(kind: str, rng: random.Random) -> dict[str, Any]:
    fields: dict[str, Any] = {"kind": kind}
    if kind in ("max_words",):
        fields["n"] = rng.choice((15, 25, 40, 60))
    elif kind == "min_words":
        fields["n"] = rng.choice((30, 50, 80))
    elif kind == "sentences_max":
        fields["n"] = rng.choice((1, 2, 3))
    elif kind == "bullets":
        fields["n"] = rng.choice((2, 3, 4))
    elif kind in ("keyword", "forbidden"):
        fields["word"] = rng.choice(KEYWORDS)
    elif kind == "json_keys":
        fields["keys"] = list(rng.choice(JSON_KEYS))
    elif kind == "ends_with":
        fields["phrase"] = rng.choice(PHRASES)
    elif kind == "starts_with":
        fields["word"] = rng.choice(STARTS)
    return fields


def _constraints(rng: random.Random) -> list[dict[str, Any]]:
    count = rng.choice((1, 1, 2, 2, 3))
    kinds = sorted(KINDS)
    while True:
        chosen = rng.sample(kinds, count)
        if compatible(chosen):
            return [_constraint(kind, rng) for kind in chosen]


def generate(count: int = 400, *, seed: int = 0, eval_share: float = 0.2) -> list[InstructPrompt]:
    """``count`` prompts; the last ``eval_share`` of a stable shuffle of indices is held out."""
    if count < 1 or not 0 <= eval_share < 1:
        raise ValueError("count must be positive and eval_share in [0, 1)")
    order = list(range(count))
    random.Random(f"instruct-split-{seed}").shuffle(order)
    held_out = set(order[: round(count * eval_share)])
    return list(_prompts(count, seed=seed, held_out=held_out))


def _prompts(count: int, *, seed: int, held_out: set[int]) -> Iterator[InstructPrompt]:
    for index in range(count):
        rng = random.Random(f"instruct-{seed}-{index}")
        request = rng.choice(REQUESTS).format(topic=rng.choice(TOPICS))
        constraints = _constraints(rng)
        text = " ".join([request, *(instruction(c) for c in constraints)])
        split = "eval" if index in held_out else "train"
        yield InstructPrompt(text=text, constraints=constraints, split=split, index=index,
                             seed=seed)


def import_rows(prompts: list[InstructPrompt]) -> Iterator[dict[str, Any]]:
    """Rows in the ``prompt-only`` import format (docs/data-formats.md), metadata included."""
    for prompt in prompts:
        yield {"messages": [{"role": "user", "content": prompt.text}],
               "tags": ["instruct"], "split": prompt.split, "metadata": prompt.metadata()}
