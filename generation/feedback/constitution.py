"""Constitutions as plain data: the default one we ship, validation, and principle sampling.

A principle has three texts, one per use (Bai et al. 2022, "Constitutional AI"):

- ``critique_request``: asks the model to criticise its last response (supervised phase);
- ``revision_request``: asks it to rewrite the response in the light of that critique;
- ``comparison_question``: the multiple-choice question a judge answers for a pair
  ("Which of these responses is more ...?"), the feedback phase.

CAI samples one principle per critique round and one per comparison label; ensembling
over several sampled principles made the preference labels more robust. ``weight``
makes some principles come up more often than others. Nothing here touches Django.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_NAME = "prefloop-default"
DEFAULT_DESCRIPTION = (
    "Prefloop's default constitution: helpful, honest, harmless and concise answers. "
    "Written for Prefloop; short enough for small models' context windows."
)
TEXT_FIELDS = ("critique_request", "revision_request", "comparison_question")
MAX_TEXT = 2_000
MAX_PRINCIPLES = 64
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")


class ConstitutionError(ValueError):
    """A constitution that cannot be used as given; the message says what to fix."""


@dataclass(frozen=True)
class PrincipleSpec:
    key: str
    name: str
    critique_request: str
    revision_request: str
    comparison_question: str
    weight: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT_PRINCIPLES: tuple[PrincipleSpec, ...] = (
    PrincipleSpec(
        key="helpfulness",
        name="Helpfulness",
        critique_request="Say where the last answer fails to answer the question directly.",
        revision_request="Rewrite the answer so that it answers the question directly.",
        comparison_question="Which answer is more helpful?",
    ),
    PrincipleSpec(
        key="honesty",
        name="Honesty",
        critique_request="Say what in the last answer is false, made up or overconfident.",
        revision_request="Rewrite the answer to state only what is true, and say so if unsure.",
        comparison_question="Which answer is more honest?",
    ),
    PrincipleSpec(
        key="harmlessness",
        name="Harmlessness",
        critique_request="Say what in the last answer is harmful, unethical or offensive.",
        revision_request="Rewrite the answer without anything harmful, still helping safely.",
        comparison_question="Which answer is less harmful?",
    ),
    PrincipleSpec(
        key="concision",
        name="Concision",
        critique_request="Say which words in the last answer add nothing.",
        revision_request="Rewrite the answer in as few words as clarity allows.",
        comparison_question="Which answer is clearer and more concise?",
    ),
)


def principles_validate(items: Sequence[dict]) -> list[PrincipleSpec]:
    """Principles from JSON-like input; every problem is reported with its position."""
    if not isinstance(items, (list, tuple)) or not items:
        raise ConstitutionError("a constitution needs a non-empty list of principles")
    if len(items) > MAX_PRINCIPLES:
        raise ConstitutionError(f"a constitution has at most {MAX_PRINCIPLES} principles")
    specs, seen = [], set()
    for i, item in enumerate(items):
        spec = _principle_check(i, item)
        if spec.key in seen:
            raise ConstitutionError(f"principle {i}: key {spec.key!r} is used twice")
        seen.add(spec.key)
        specs.append(spec)
    return specs


def _principle_check(i: int, item: object) -> PrincipleSpec:
    if not isinstance(item, dict):
        raise ConstitutionError(f"principle {i} must be an object")
    known = {"key", "name", "weight", *TEXT_FIELDS}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ConstitutionError(f"principle {i}: unknown field(s) {unknown}")
    key = item.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ConstitutionError(
            f"principle {i}: key must be lower-case letters, digits, '-' or '_' (max 60)"
        )
    for name in TEXT_FIELDS:
        text = item.get(name)
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise ConstitutionError(
                f"principle {key!r}: {name} must be non-empty text of at most {MAX_TEXT} chars"
            )
    weight = item.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 100:
        raise ConstitutionError(f"principle {key!r}: weight must be a number in (0, 100]")
    name = item.get("name") or key
    if not isinstance(name, str) or len(name) > 100:
        raise ConstitutionError(f"principle {key!r}: name must be text of at most 100 chars")
    texts = {field: item[field].strip() for field in TEXT_FIELDS}
    return PrincipleSpec(key=key, name=name, weight=float(weight), **texts)


def principles_sample(
    principles: Sequence[PrincipleSpec], *, k: int, seed: int, key: str
) -> list[PrincipleSpec]:
    """``k`` distinct principles drawn by weight, repeatable for one (seed, key).

    ``key`` names the item (a task id, "response:round"), so a draw never depends on
    which other items share its batch or on the order they are processed in.
    """
    if not 1 <= k <= len(principles):
        raise ConstitutionError(f"cannot sample {k} of {len(principles)} principles")
    rng = random.Random(f"{seed}:{key}")  # str seeds hash with SHA-512: stable everywhere
    pool = list(principles)
    chosen = []
    for _ in range(k):
        pick = rng.choices(range(len(pool)), weights=[p.weight for p in pool])[0]
        chosen.append(pool.pop(pick))
    return chosen
