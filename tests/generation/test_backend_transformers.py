"""The transformers backend on the tiny model, checked against plain unbatched forward passes."""

from __future__ import annotations

import pytest
import torch

from generation.backends import (
    BackendError,
    OptionRequest,
    PromptTooLongError,
    SamplingConfig,
    ScoreRequest,
)
from generation.backends.base import render_prompt_ids
from generation.backends.hf import TransformersBackend

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of Zubria?"}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "Which city is the capital of the country Morvania?"}],
    [{"role": "user", "content": "Capital of Quillon?"}],
    [{"role": "user", "content": "Name the capital of Teskar, please, if you know it at all."}],
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir) -> TransformersBackend:
    return TransformersBackend(str(tiny_model_dir), dtype="float32")


def reference_logprobs(backend: TransformersBackend, ids: list[int]) -> torch.Tensor:
    """log p(token i | tokens < i) for i >= 1 from one unpadded forward pass."""
    with torch.no_grad():
        logits = backend.lm(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_generate_returns_n_completions_per_request_in_order(backend):
    out = backend.generate(CONVERSATIONS, SamplingConfig(n=3, temperature=1.0, max_tokens=12))
    assert [len(row) for row in out] == [3, 3, 3, 3]
    for row in out:
        for c in row:
            assert c.token_count == len(c.token_ids) <= 12
            assert c.finish_reason == ("stop" if c.token_ids[-1] in backend.eos else "length")
            assert c.cumulative_logprob < 0
            text_ids = c.token_ids[:-1] if c.finish_reason == "stop" else c.token_ids
            assert c.text == backend.tokenizer.decode(text_ids, skip_special_tokens=True)


def test_greedy_is_the_same_alone_or_in_a_padded_batch(backend, tiny_model_dir):
    greedy = SamplingConfig(n=2, temperature=0, max_tokens=24)
    batched = backend.generate(CONVERSATIONS, greedy)
    one_by_one = TransformersBackend(str(tiny_model_dir), dtype="float32", max_batch_size=2)
    alone = one_by_one.generate(CONVERSATIONS, greedy)
    for row_a, row_b in zip(batched, alone, strict=True):
        assert row_a[0].token_ids == row_a[1].token_ids == row_b[0].token_ids
        assert row_a[0].cumulative_logprob == pytest.approx(row_b[0].cumulative_logprob, abs=1e-4)


def test_cumulative_logprob_is_the_raw_log_probability_of_the_tokens(backend):
    sampled = SamplingConfig(n=2, temperature=1.5, top_p=0.9, max_tokens=16, seed=11)
    for request, row in zip(CONVERSATIONS, backend.generate(CONVERSATIONS, sampled), strict=True):
        prompt = render_prompt_ids(backend.tokenizer, request)
        for c in row:
            expected = reference_logprobs(backend, prompt + list(c.token_ids))[len(prompt) - 1 :]
            assert c.cumulative_logprob == pytest.approx(float(expected.sum()), abs=1e-3)


def test_seed_makes_sampling_repeatable(backend):
    a = backend.generate(CONVERSATIONS, SamplingConfig(n=2, max_tokens=16, seed=5))
    b = backend.generate(CONVERSATIONS, SamplingConfig(n=2, max_tokens=16, seed=5))
    c = backend.generate(CONVERSATIONS, SamplingConfig(n=2, max_tokens=16, seed=6))
    assert [[x.token_ids for x in row] for row in a] == [[x.token_ids for x in row] for row in b]
    assert [[x.token_ids for x in row] for row in a] != [[x.token_ids for x in row] for row in c]


def test_score_matches_an_unpadded_forward_pass(backend):
    requests = [ScoreRequest(c, "The capital is Vell.") for c in CONVERSATIONS]
    requests.append(ScoreRequest(CONVERSATIONS[0], " sure", assistant_prefix="I'm not"))
    for request, score in zip(requests, backend.score(requests), strict=True):
        prefix = render_prompt_ids(backend.tokenizer, request.messages, request.assistant_prefix)
        full = render_prompt_ids(
            backend.tokenizer, request.messages, request.assistant_prefix + request.continuation
        )
        assert full[: len(prefix)] == prefix and score.token_count == len(full) - len(prefix)
        expected = reference_logprobs(backend, full)[len(prefix) - 1 :].sum()
        assert score.logprob == pytest.approx(float(expected), abs=1e-4)


def test_option_logprobs_read_the_next_token_distribution(backend):
    requests = [
        OptionRequest(c, ("A", "B"), assistant_prefix="The answer is (") for c in CONVERSATIONS
    ]
    for request, got in zip(requests, backend.option_logprobs(requests), strict=True):
        ids = render_prompt_ids(backend.tokenizer, request.messages, request.assistant_prefix)
        with torch.no_grad():
            logits = backend.lm(input_ids=torch.tensor([ids])).logits[0, -1].float()
        expected = torch.log_softmax(logits, -1)
        for option in ("A", "B"):
            token = backend.tokenizer.convert_tokens_to_ids(option)
            assert got[option] == pytest.approx(float(expected[token]), abs=1e-4)
    with pytest.raises(BackendError, match="must be single tokens"):
        backend.option_logprobs([OptionRequest(CONVERSATIONS[0], ("Absolutely", "B"))])


def test_prompt_longer_than_the_context_is_refused(backend):
    long = [{"role": "user", "content": "capital " * 400}]
    with pytest.raises(PromptTooLongError, match="context is 256 tokens") as err:
        backend.generate([CONVERSATIONS[0], long], SamplingConfig(max_tokens=4))
    assert err.value.index == 1 and err.value.limit == 256


def test_generation_stops_at_the_end_of_the_context(backend):
    near = [{"role": "user", "content": "capital " * 230}]
    length = len(render_prompt_ids(backend.tokenizer, near))
    assert 200 < length < 256
    (c,) = backend.generate([near], SamplingConfig(temperature=0, max_tokens=200))[0]
    assert c.token_count <= 256 - length
