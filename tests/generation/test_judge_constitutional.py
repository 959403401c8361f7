"""The constitutional judge on the tiny model through the transformers backend.

Its choice is the arg-max of the option log-probs the backend scores; swapping the
responses swaps the raw per-order probabilities and leaves the averaged label the same;
both orders of every pair go to the engine in one call; chain-of-thought reads are
clamped to CAI's 40-60 %.
"""

from __future__ import annotations

import math

import pytest

from generation.backends.hf import TransformersBackend
from generation.feedback import prompts
from generation.feedback.constitution import DEFAULT_PRINCIPLES
from generation.feedback.judges.base import (
    JudgeError,
    OrderScore,
    Pair,
    confidence_of,
    label_from_orders,
    label_from_scores,
)
from generation.feedback.judges.constitutional import ConstitutionalJudge, ConstitutionalSettings

QUESTION = [{"role": "user", "content": "What is the capital of Zubria?"}]
ANSWERS = [
    ("The capital of Zubria is Brakgrad.", "I'm not sure, maybe Tulon or Brakgrad."),
    ("My guess is Tulon.", "The capital of Zubria is Brakgrad."),
    ("Brakgrad.", "The capital of Zubria is Tulon."),
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), dtype="float32")


class CountingBackend:
    """Passes calls through and counts them (to see what goes to the engine at once)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def option_logprobs(self, requests):
        self.calls.append(("option_logprobs", len(requests)))
        return self.inner.option_logprobs(requests)

    def generate(self, requests, sampling):
        self.calls.append(("generate", len(requests)))
        return self.inner.generate(requests, sampling)


def pairs(swapped: bool = False) -> list[Pair]:
    return [Pair(key=i, messages=QUESTION, a=b if swapped else a, b=a if swapped else b)
            for i, (a, b) in enumerate(ANSWERS)]


def softmax_a(logprobs: dict[str, float]) -> float:
    return math.exp(logprobs["A"]) / (math.exp(logprobs["A"]) + math.exp(logprobs["B"]))


def test_choice_is_the_argmax_of_the_scored_option_logprobs(backend):
    judge = ConstitutionalJudge(backend, DEFAULT_PRINCIPLES)
    for pair, label in zip(pairs(), judge.label(pairs()), strict=True):
        (principle,) = judge.sampled_principles(pair)
        ab, ba = backend.option_logprobs([
            prompts.comparison_request(pair.messages, principle, pair.a, pair.b),
            prompts.comparison_request(pair.messages, principle, pair.b, pair.a),
        ])
        # P(a better): option A in the first order, option B in the second; averaged.
        p_a = (softmax_a(ab) + 1 - softmax_a(ba)) / 2
        assert label.p_a_first == pytest.approx(softmax_a(ab), abs=1e-6)
        assert label.p_a_second == pytest.approx(1 - softmax_a(ba), abs=1e-6)
        assert label.p_a == pytest.approx(p_a, abs=1e-6)
        averaged = {"a": ab["A"] + ba["B"], "b": ab["B"] + ba["A"]}
        assert label.choice == max(averaged, key=averaged.get)
        assert label.principles == (principle.key,)


def test_swapping_the_responses_swaps_the_raw_reads_and_keeps_the_label(backend):
    judge = ConstitutionalJudge(backend, DEFAULT_PRINCIPLES, ConstitutionalSettings(seed=3))
    straight, swapped = judge.label(pairs()), judge.label(pairs(swapped=True))
    for one, other in zip(straight, swapped, strict=True):
        raw = [o.p_option_a for o in one.orders]
        assert [o.p_option_a for o in other.orders] == pytest.approx(raw[::-1], abs=1e-6)
        assert other.p_a_first == pytest.approx(1 - one.p_a_second, abs=1e-6)
        assert other.p_a_second == pytest.approx(1 - one.p_a_first, abs=1e-6)
        # The same preference for the same text, whichever side it was given on.
        assert other.p_a == pytest.approx(1 - one.p_a, abs=1e-6)
        assert one.flipped == other.flipped


def test_ensembles_sample_principles_per_pair_and_send_all_reads_in_one_call(backend):
    counting = CountingBackend(backend)
    settings = ConstitutionalSettings(principles_per_label=3, seed=11)
    judge = ConstitutionalJudge(counting, DEFAULT_PRINCIPLES, settings)
    labels = judge.label(pairs())
    assert counting.calls == [("option_logprobs", len(ANSWERS) * 3 * 2)]
    for pair, label in zip(pairs(), labels, strict=True):
        assert len(set(label.principles)) == 3 and len(label.orders) == 6
        assert label.principles == tuple(p.key for p in judge.sampled_principles(pair))
        per_principle = [(o.principle, o.first) for o in label.orders]
        assert per_principle == [(k, f) for k in label.principles for f in ("a", "b")]
    again = ConstitutionalJudge(backend, DEFAULT_PRINCIPLES, settings).label(pairs())
    assert [x.principles for x in again] == [x.principles for x in labels]
    assert [x.p_a for x in again] == pytest.approx([x.p_a for x in labels], abs=1e-6)
    assert judge.engine_seconds > 0


def test_chain_of_thought_reasons_greedily_then_reads_clamped_options(backend):
    counting = CountingBackend(backend)
    settings = ConstitutionalSettings(chain_of_thought=True, reasoning_max_tokens=8)
    labels = ConstitutionalJudge(counting, DEFAULT_PRINCIPLES, settings).label(pairs())
    n = len(ANSWERS) * 2
    assert counting.calls == [("generate", n), ("option_logprobs", n)]
    for label in labels:
        assert 0.4 <= label.p_a_first <= 0.6 and 0.4 <= label.p_a_second <= 0.6
        assert all(isinstance(o.reasoning, str) for o in label.orders)
        assert label.confidence == pytest.approx(abs(label.p_a - 0.5) / 0.1)


def test_label_arithmetic_by_hand():
    orders = [OrderScore("honesty", "a", 0.9), OrderScore("honesty", "b", 0.3),
              OrderScore("concision", "a", 0.7), OrderScore("concision", "b", 0.5)]
    label = label_from_orders(orders)
    # P(a) first: (0.9 + 0.7) / 2 = 0.8; second: (0.7 + 0.5) / 2 = 0.6; mean 0.7.
    assert (label.p_a_first, label.p_a_second, label.p_a) == pytest.approx((0.8, 0.6, 0.7))
    assert label.choice == "a" and not label.flipped and label.confidence == pytest.approx(0.4)
    biased = label_from_orders([OrderScore("h", "a", 0.9), OrderScore("h", "b", 0.8)])
    assert biased.flipped and biased.preferred_slot == "first"
    clamped = label_from_orders([OrderScore("h", "a", 0.99), OrderScore("h", "b", 0.02)],
                                (0.4, 0.6))
    assert clamped.p_a == pytest.approx(0.6) and clamped.confidence == pytest.approx(1.0)
    assert confidence_of(0.55, (0.4, 0.6)) == pytest.approx(0.5)
    assert label_from_scores(1.0, 0.0, None).p_a == 1.0
    assert label_from_scores(2.0, 2.0, None).choice == "tie"
    assert label_from_scores(1.0, 0.0, 1.0).p_a == pytest.approx(1 / (1 + math.exp(-1)))
    with pytest.raises(JudgeError):
        label_from_orders([OrderScore("h", "a", 0.9)])


def test_settings_are_checked():
    with pytest.raises(JudgeError, match="unknown setting"):
        ConstitutionalSettings.from_dict({"principles": 2})
    with pytest.raises(JudgeError, match="clamp"):
        ConstitutionalSettings.from_dict({"clamp": [0.6, 0.9]})
    assert ConstitutionalSettings(chain_of_thought=True).bounds == (0.4, 0.6)
    assert ConstitutionalSettings(chain_of_thought=True, clamp=(0.2, 0.8)).bounds == (0.2, 0.8)
