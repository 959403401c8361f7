"""What every judge takes and returns: plain data, no Django, no model code.

A judge labels pairs. The label is a soft one, ``p_a`` = the probability that
response A is better, plus what it was read from: the probability of A when A was
shown first and when it was shown second (judges that see both orders), the
principles used and any reasoning. Three questions follow from it:

- which answer: ``choice`` is "a" when ``p_a > 0.5``, "b" when below, "tie" at 0.5;
- how sure: ``confidence`` is ``|p_a - 0.5|`` scaled so that 1 is the surest the judge
  can be (with chain of thought the probabilities are clamped, CAI-style, to 0.4..0.6,
  so 0.6 already counts as fully sure);
- does it depend on the order: ``flipped`` when the two orders pick different answers
  (the judge preferred the same *slot* both times: position bias, RLAIF §2.1.1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from generation.backends.base import Conversation


class JudgeError(Exception):
    """A judge cannot produce labels as configured; the message is shown to the owner."""


@dataclass(frozen=True)
class Pair:
    """One comparison: ``key`` identifies it (a task id) and seeds any sampling."""

    key: int
    messages: Conversation
    a: str
    b: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderScore:
    """One read of the judge: which response was shown as option (A), and P(option A)."""

    principle: str
    first: str  # "a" or "b"
    p_option_a: float
    reasoning: str = ""

    @property
    def p_a(self) -> float:
        """This read as a probability that response a is better."""
        return self.p_option_a if self.first == "a" else 1.0 - self.p_option_a


@dataclass(frozen=True)
class PairLabel:
    p_a: float
    confidence: float
    p_a_first: float | None = None  # P(a better) read with a shown first; None: order-free
    p_a_second: float | None = None  # ... and with a shown second
    principles: tuple[str, ...] = ()
    orders: tuple[OrderScore, ...] = ()
    scores: tuple[float, float] | None = None  # programmatic / reward-model scores of a, b

    @property
    def choice(self) -> str:
        return "a" if self.p_a > 0.5 else "b" if self.p_a < 0.5 else "tie"

    @property
    def flipped(self) -> bool:
        """The two orders disagree: each picked the response in the same slot."""
        if self.p_a_first is None or self.p_a_second is None:
            return False
        return (self.p_a_first - 0.5) * (self.p_a_second - 0.5) < 0

    @property
    def preferred_slot(self) -> str:
        """For a flipped label, the slot picked both times ("first" / "second"); else ""."""
        if not self.flipped:
            return ""
        return "first" if self.p_a_first > 0.5 else "second"

    def as_dict(self) -> dict:
        return {
            "p_a": self.p_a, "confidence": self.confidence, "p_a_first": self.p_a_first,
            "p_a_second": self.p_a_second, "principles": list(self.principles),
            "orders": [{"principle": o.principle, "first": o.first, "p_option_a": o.p_option_a,
                        "reasoning": o.reasoning} for o in self.orders],
            "scores": list(self.scores) if self.scores is not None else None,
        }


class PairJudge(Protocol):
    method: str

    def label(self, pairs: Sequence[Pair]) -> list[PairLabel | None]:
        """One label per pair, in order; None where the judge cannot judge that pair."""
        ...


def option_probability(logprobs: Mapping[str, float], option: str = "A") -> float:
    """P(option) normalised over the offered options (CAI: "normalised probability")."""
    top = max(logprobs.values())
    weights = {o: math.exp(lp - top) for o, lp in logprobs.items()}
    return weights[option] / sum(weights.values())


def clamp(p: float, bounds: tuple[float, float] | None) -> float:
    return p if bounds is None else min(max(p, bounds[0]), bounds[1])


def confidence_of(p_a: float, bounds: tuple[float, float] | None = None) -> float:
    """``|p_a - 0.5|`` as a share of the widest the judge's labels can be."""
    half_width = 0.5 if bounds is None else max(bounds[1] - 0.5, 0.5 - bounds[0])
    return min(abs(p_a - 0.5) / half_width, 1.0) if half_width > 0 else 0.0


def label_from_orders(
    orders: Sequence[OrderScore], bounds: tuple[float, float] | None = None
) -> PairLabel:
    """Average the reads of both orders (RLAIF) over every sampled principle (CAI).

    Each read is clamped to ``bounds`` first (CAI clamped chain-of-thought labels).
    """
    firsts = [clamp(o.p_a, bounds) for o in orders if o.first == "a"]
    seconds = [clamp(o.p_a, bounds) for o in orders if o.first == "b"]
    if not firsts or not seconds:
        raise JudgeError("a two-order label needs reads with each response shown first")
    p_first, p_second = sum(firsts) / len(firsts), sum(seconds) / len(seconds)
    p_a = (p_first + p_second) / 2
    principles = tuple(dict.fromkeys(o.principle for o in orders))
    return PairLabel(
        p_a=p_a, confidence=confidence_of(p_a, bounds), p_a_first=p_first, p_a_second=p_second,
        principles=principles, orders=tuple(orders),
    )


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def label_from_scores(score_a: float, score_b: float, temperature: float | None) -> PairLabel:
    """Two per-response scores as a preference: Bradley-Terry ``sigmoid((s_a - s_b) / T)``,
    or, with ``temperature=None``, a hard label (1, 0, or 0.5 for equal scores)."""
    if temperature is None:
        p_a = 0.5 if score_a == score_b else float(score_a > score_b)
    else:
        p_a = sigmoid((score_a - score_b) / temperature)
    return PairLabel(p_a=p_a, confidence=confidence_of(p_a), scores=(score_a, score_b))
