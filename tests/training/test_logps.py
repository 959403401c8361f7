"""training.core.logps: chunked completion log-probs equal the naive full-logits computation."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from training.core import data
from training.core.logps import sequence_logps

from .conftest import build_model, preference_rows


def naive_logps(model, input_ids, attention_mask, completion_mask):
    """The textbook version: full (N, T, V) logits, log_softmax, gather, masked sum."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    token_logps = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (N, T-1)
    mask = completion_mask[:, 1:].float()
    return (token_logps * mask).sum(-1), mask.sum(-1).long()


@pytest.fixture
def batch(tokenizer):
    rows = preference_rows(5)
    rows[2]["chosen"] = "The answer is good, and here is a much longer answer than the others."
    snap = data.tokenize_rows(rows, tokenizer, 256)
    return data.make_batch(snap, [0, 1, 2, 3, 4], 256, tokenizer.pad_token_id)


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_chunked_logps_match_full_logits(tokenizer, batch, chunk_size):
    model = build_model(len(tokenizer))
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    with torch.no_grad():
        expected, expected_len = naive_logps(model, *args)
        got, lengths = sequence_logps(model, *args, chunk_size=chunk_size)
    assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(lengths, expected_len)
    assert (
        lengths.tolist() == batch["completion_mask"].sum(1).tolist()
    )  # no completion token at t=0


def test_chunked_logps_gradients_match(tokenizer, batch):
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    model_a, model_b = build_model(len(tokenizer)), build_model(len(tokenizer))
    naive_logps(model_a, *args)[0].sum().backward()
    sequence_logps(model_b, *args, chunk_size=5)[0].sum().backward()
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters(), strict=True):
        assert_close(pb.grad, pa.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_lm_head_only_sees_completion_positions_in_chunks(tokenizer, batch):
    model = build_model(len(tokenizer))
    seen = []
    model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        sequence_logps(
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["completion_mask"],
            chunk_size=16,
        )
    n_scored = int(batch["completion_mask"][:, 1:].sum())
    assert all(len(s) == 2 and s[0] <= 16 for s in seen)  # (chunk, V), never (N, T, V)
    assert sum(s[0] for s in seen) == n_scored
