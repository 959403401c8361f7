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


def test_bench_runs_tiny_with_gate_repeats_and_like_for_like_headline(tmp_path, capsys):
    pytest.importorskip("trl")
    from bench import training as bench

    argv = ["--shape", "test", "--steps", "1", "--warmup", "1", "--repeats", "3"]
    bench.tempfile.tempdir = str(tmp_path)  # the bench's scratch folders
    try:
        assert bench.main(argv) == 0  # the equivalence gate passed
    finally:
        bench.tempfile.tempdir = None
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("machine: CPU") and "trl 1.16" in lines[1]
    assert re.fullmatch(r"load average \(1 min\): before \d+\.\d\d, after \d+\.\d\d", lines[4])
    assert lines[5].startswith("equivalence gate (dpo, reference != policy") and lines[5].endswith(
        "tolerance 1e-03: pass"
    )
    rows = {ln.split("  ")[0].strip(): ln.split() for ln in lines if ln[:4] in ("pref", "trl ")}
    contenders = ["prefloop dpo", "prefloop dpo live", "prefloop dpo unshared", "trl dpo"]
    contenders += ["trl dpo precompute", "prefloop kto", "prefloop kto live", "trl kto"]
    for name in contenders + ["trl kto precompute"]:
        cells = rows[name][len(name.split()) :]  # median min max tokens positions pos/tok
        median, low, high = (float(c.replace(",", "")) for c in cells[:3])
        assert 0 < low <= median <= high, name
    assert float(rows["prefloop dpo"][-1]) < 1.0  # prefix sharing: prompt computed once, disclosed
    assert float(rows["trl dpo precompute"][-1]) == 1.0
    labels = ["dpo live/live:", "dpo defaults/defaults:", "kto precompute/precompute:"]
    labels += ["kto live/live:", "dpo precompute/precompute:"]
    for label in labels:
        assert any(ln.startswith(label) for ln in lines), label
    assert re.fullmatch(r"prefloop/trl throughput ratio: \d+\.\d\d", lines[-1]), lines[-1]
    headline = next(ln for ln in lines if ln.startswith("dpo precompute/precompute:"))
    assert headline.split()[-1] == lines[-1].split()[-1]  # the headline is like for like


def test_gate_fails_above_the_tolerance():
    from bench.training_gate import TOLERANCE, GateResult

    assert GateResult(2, 8, TOLERANCE / 2, 0.0).passed
    failed = GateResult(2, 8, 0.0, TOLERANCE * 2)
    assert not failed.passed and failed.line().endswith(": FAIL")


def test_bench_data_has_variable_exact_lengths():
    from bench import training as bench

    tokenizer = bench.build_tokenizer()
    shape = bench.SHAPES["tiny"]
    rows = bench.preference_rows(20, shape)
    snap = data.tokenize_rows(rows, tokenizer, 10_000)
    lengths = set()
    for raw, row in zip(rows, snap.rows, strict=True):
        assert len(row.chosen.prompt_ids) == len(raw["prompt"].split())
        for seq, key in ((row.chosen, "chosen"), (row.rejected, "rejected")):
            assert len(seq.completion_ids) == len(raw[key].split()) + 1  # EOS
            assert 32 <= len(seq.completion_ids) <= 64 and 32 <= len(seq.prompt_ids) <= 64
            lengths.add((len(seq.prompt_ids), len(seq.completion_ids)))
    assert len(lengths) > 10  # lengths vary, so batches are padded
    kto = data.tokenize_rows(bench.kto_rows(8, shape), tokenizer, 10_000)
    assert len({len(r.seq.prompt_ids) + len(r.seq.completion_ids) for r in kto.rows}) > 1


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
