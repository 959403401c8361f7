"""Made-up countries and capitals: the demo task whose answers a program can check."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Split = Literal["train", "heldout"]

N_FACTS = 300
N_TRAIN = 240

PHRASINGS: tuple[str, ...] = (
    "What is the capital of {country}?",
    "Which city is the capital of {country}?",
    "Name the capital city of {country}.",
    "Tell me the capital of {country}.",
)

_ONSETS = (
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
    "br", "dr", "gr", "kr", "tr", "st", "th", "sh",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s", "m")
_COUNTRY_ENDINGS = ("ia", "ania", "ovia", "istan", "ar", "eth", "ora", "and")
_CAPITAL_ENDINGS = ("", "a", "on", "ek", "grad", "heim", "ul", "ith")

# Words a name must never equal, so that the checker cannot confuse a name with ordinary text.
_RESERVED = frozenset(
    "the is of a an it its what which city capital name tell me not sure maybe or "
    "probably think guess would my perhaps might be that".split()
)


@dataclass(frozen=True)
class Fact:
    country: str
    capital: str
    split: Split
    seed: int = 0


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _name(rng: random.Random, endings: tuple[str, ...]) -> str:
    stem = "".join(_syllable(rng) for _ in range(rng.choice((1, 2, 2))))
    name = stem + rng.choice(endings)
    return name.capitalize()


def _is_pronounceable(name: str) -> bool:
    lowered = name.lower()
    return (
        5 <= len(lowered) <= 11
        and re.search(r"[aeiou]{3}", lowered) is None
        and re.search(r"[^aeiou]{4}", lowered) is None
        and re.search(r"(.)\1\1|([aiou])\2", lowered) is None
    )


def _unique_names(rng: random.Random, count: int) -> list[str]:
    """Names where none is a substring of another (case-insensitive), in creation order."""
    names: list[str] = []
    lowered: list[str] = []
    while len(names) < count:
        endings = _COUNTRY_ENDINGS if len(names) % 2 == 0 else _CAPITAL_ENDINGS
        name = _name(rng, endings)
        low = name.lower()
        if low in _RESERVED or not _is_pronounceable(name):
            continue
        if any(low in other or other in low for other in lowered):
            continue
        names.append(name)
        lowered.append(low)
    return names


@lru_cache(maxsize=8)
def _facts(seed: int) -> tuple[Fact, ...]:
    rng = random.Random(f"prefloop-demo-facts-{seed}")
    names = _unique_names(rng, 2 * N_FACTS)
    pairs = [(names[2 * i], names[2 * i + 1]) for i in range(N_FACTS)]
    heldout = set(rng.sample(range(N_FACTS), N_FACTS - N_TRAIN))
    return tuple(
        Fact(country, capital, "heldout" if i in heldout else "train", seed)
        for i, (country, capital) in enumerate(pairs)
    )


def demo_facts(seed: int = 0) -> list[Fact]:
    """All 300 facts for `seed`: 240 with split "train", 60 with split "heldout"."""
    return list(_facts(seed))


def question_for(fact: Fact, phrasing: int) -> str:
    return PHRASINGS[phrasing % len(PHRASINGS)].format(country=fact.country)


def demo_questions(
    split: Split, seed: int = 0, *, all_phrasings: bool = False
) -> list[tuple[Fact, str]]:
    """One question per fact of `split` (phrasings take turns), or every phrasing per fact."""
    if split not in ("train", "heldout"):
        raise ValueError(f"unknown split {split!r}")
    facts = [fact for fact in _facts(seed) if fact.split == split]
    if all_phrasings:
        return [(f, question_for(f, p)) for f in facts for p in range(len(PHRASINGS))]
    return [(fact, question_for(fact, i)) for i, fact in enumerate(facts)]


def capitals(seed: int = 0) -> frozenset[str]:
    return frozenset(fact.capital for fact in _facts(seed))


@lru_cache(maxsize=8)
def _facts_by_question(seed: int) -> dict[str, Fact]:
    return {
        question_for(fact, p).lower(): fact for fact in _facts(seed) for p in range(len(PHRASINGS))
    }


def fact_for_question(question: str, seed: int = 0) -> Fact | None:
    """The fact a demo question asks about, so a judge can check answers to stored prompts."""
    return _facts_by_question(seed).get(" ".join(question.split()).lower())
