"""Programmatic judges: a Python function, named by dotted path, scores each response.

The function is called as ``fn(messages=..., response=..., metadata=...)`` with the
prompt's conversation, one response's text and the prompt's metadata, and returns a
number (higher is better; a bool counts as 1 / 0) or None when it cannot judge that
prompt. A pair gets a hard label by default (the better score wins, equal scores
are 0.5: unsure), or a Bradley-Terry soft label with ``temperature``.

The first one is the demo task's answer checker, :func:`demo_capital_score`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from generation.demo.checker import check_answer
from generation.demo.facts import Fact
from generation.feedback.judges.base import JudgeError, Pair, PairLabel, label_from_scores

Scorer = Callable[..., float | bool | None]


def resolve(path: str, *, allowed_prefixes: Sequence[str] | None = None) -> Scorer:
    """The callable at ``package.module.attribute`` (or ``package.module:attribute``)."""
    module_name, sep, attribute = path.replace(":", ".").rpartition(".")
    if not module_name or not attribute:
        raise JudgeError(f"{path!r} is not a dotted path like 'package.module.function'")
    if allowed_prefixes is not None and not any(path.startswith(p) for p in allowed_prefixes):
        raise JudgeError(
            f"{path!r} is not under an allowed module ({', '.join(allowed_prefixes)}); "
            "set FEEDBACK_JUDGE_MODULES on the server to allow more"
        )
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise JudgeError(f"cannot import programmatic judge {path!r}: {exc}") from exc
    if not callable(target):
        raise JudgeError(f"{path!r} is not callable")
    return target


class ProgrammaticJudge:
    method = "programmatic"

    def __init__(self, scorer: Scorer, *, name: str = "", temperature: float | None = None):
        if temperature is not None and not temperature > 0:
            raise JudgeError("temperature must be positive (or null for hard labels)")
        self.scorer, self.name, self.temperature = scorer, name or repr(scorer), temperature
        self.engine_seconds = 0.0

    def label(self, pairs: Sequence[Pair]) -> list[PairLabel | None]:
        labels: list[PairLabel | None] = []
        for pair in pairs:
            score_a, score_b = self._score(pair, pair.a), self._score(pair, pair.b)
            if score_a is None or score_b is None:
                labels.append(None)
            else:
                labels.append(label_from_scores(score_a, score_b, self.temperature))
        return labels

    def _score(self, pair: Pair, response: str) -> float | None:
        try:
            value = self.scorer(messages=pair.messages, response=response, metadata=pair.metadata)
        except Exception as exc:  # noqa: BLE001 owner code: any failure ends the job with a reason
            raise JudgeError(
                f"programmatic judge {self.name} raised {type(exc).__name__}: {exc}"
            ) from exc
        if value is None:
            return None
        if isinstance(value, bool) or isinstance(value, (int, float)):
            return float(value)
        raise JudgeError(f"programmatic judge {self.name} returned {value!r}, not a number")


def demo_capital_score(
    *, messages: Sequence[Mapping[str, str]], response: str, metadata: Mapping[str, Any]
) -> float | None:
    """1.0 when the demo checker passes the answer (names only the right capital, no
    hedge), else 0.0; None for prompts that carry no ``demo_fact``."""
    fact = metadata.get("demo_fact") if metadata else None
    if not fact:
        return None
    split = fact.get("split", "train")
    demo = Fact(country=fact["country"], capital=fact["capital"], split=split,
                seed=int(fact.get("seed", 0)))
    return 1.0 if check_answer(demo, response) else 0.0
