"""bench/training.py runs end to end (no timing assertions), and the speed levers it measures keep
the math exact: prefix sharing gives the log-probs and gradients of the separate layout."""

from __future__ import annotations

import re

import pytest
import torch
from torch.testing import assert_close

from training.core import data
from training.core.logps import batch_logps

from .conftest import build_model, preference_rows


def test_bench_core_runs_one_step_of_every_contender(tmp_path):
    pytest.importorskip("trl")
    from bench import training as bench

    results = bench.run_bench(shape_name="test", warmup=0, steps=1, kto=True, work=str(tmp_path))
    names = ("prefloop dpo", "prefloop dpo live", "trl dpo", "trl dpo precompute")
    for name in names + ("prefloop kto", "trl kto"):
        assert results[name] > 0, name
    lines = bench.report(results, device="cpu", shape_name="test")
    assert re.fullmatch(r"prefloop/trl throughput ratio: \d+\.\d\d", lines[-1]), lines[-1]
    assert lines[0].startswith("machine: CPU") and "trl 1.16" in lines[1]


def test_bench_data_has_exact_lengths():
    from bench import training as bench

    tokenizer = bench.build_tokenizer()
    shape = bench.SHAPES["tiny"]
    snap = data.tokenize_rows(bench.preference_rows(3, shape), tokenizer, 10_000)
    for row in snap.rows:
        for seq in (row.chosen, row.rejected):
            assert (len(seq.prompt_ids), len(seq.completion_ids)) == (64, 64)
    kto = data.tokenize_rows(bench.kto_rows(2, shape), tokenizer, 10_000)
    assert {len(r.seq.prompt_ids) + len(r.seq.completion_ids) for r in kto.rows} == {128}


@pytest.mark.parametrize("max_length", [26, 29, 256])  # cuts completions, or not
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_prefix_sharing_gives_the_separate_log_probs_and_gradients(tokenizer, max_length, attn):
    rows = preference_rows(5)
    rows[2]["chosen"] = "The answer is good, and here is a much longer answer than the others."
    snap = data.tokenize_rows(rows, tokenizer, max_length)
    idx = list(range(len(snap.rows)))
    separate = data.make_batch(snap, idx, max_length, tokenizer.pad_token_id)
    shared = data.make_batch(snap, idx, max_length, tokenizer.pad_token_id, None, True)
    assert shared["input_ids"].numel() < separate["input_ids"].numel()
    assert data.batch_tokens(shared) == data.batch_tokens(separate)

    grads = []
    for batch in (separate, shared):
        model = build_model(len(tokenizer))
        model.config._attn_implementation = attn
        logps, lengths = batch_logps(model, {k: v for k, v in batch.items() if k != "idx"})
        (logps * torch.linspace(0.5, 1.5, logps.numel())).sum().backward()
        grads.append((logps.detach(), lengths, [p.grad for p in model.parameters()]))
    (a, len_a, grad_a), (b, len_b, grad_b) = grads
    assert torch.equal(len_a, len_b)
    assert_close(b, a, atol=1e-5, rtol=1e-5)
    for ga, gb in zip(grad_a, grad_b, strict=True):
        assert_close(gb, ga, atol=1e-5, rtol=1e-4)


def test_recomputed_lm_head_chunks_give_the_same_gradients(tokenizer, monkeypatch):
    """Large batches recompute the LM head chunk by chunk in the backward; small ones keep the
    logits. Both give the same log-probs and gradients."""
    from training.core import logps as logps_module

    snap = data.tokenize_rows(preference_rows(4), tokenizer, 256)
    batch = data.make_batch(snap, [0, 1, 2, 3], 256, tokenizer.pad_token_id, None, True)
    inputs = {k: v for k, v in batch.items() if k != "idx"}
    results = []
    for limit in (logps_module.CHECKPOINT_LOGITS_BYTES, 0):  # kept, then recomputed
        monkeypatch.setattr(logps_module, "CHECKPOINT_LOGITS_BYTES", limit)
        model = build_model(len(tokenizer))
        calls: list[int] = []
        model.get_output_embeddings().register_forward_hook(lambda *a, c=calls: c.append(1))
        out, _ = logps_module.shared_prefix_logps(model, **inputs, chunk_size=7)
        forwards = len(calls)
        out.sum().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()], len(calls) - forwards))
    (a, grad_a, recomputed_a), (b, grad_b, recomputed_b) = results
    assert recomputed_a == 0 and recomputed_b > 0  # the second run re-ran the head in backward
    assert_close(b, a)
    for ga, gb in zip(grad_a, grad_b, strict=True):
        assert_close(gb, ga, atol=1e-6, rtol=1e-5)
