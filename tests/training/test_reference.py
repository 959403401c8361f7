"""training.core.reference: precomputed (cached) and on-the-fly reference log-probs agree."""

from __future__ import annotations

import json
import os

import torch
from torch.testing import assert_close

from training.core import data, reference
from training.core.config import TrainConfig
from training.core.logps import sequence_logps
from training.core.train import load_model, main
from training.losses import dpo_loss

from .conftest import kto_rows, preference_rows, write_jsonl


def test_cached_reference_gives_the_same_losses_as_a_live_reference(tokenizer, model_dir, tmp_path):
    snap = data.load_snapshot(
        write_jsonl(tmp_path / "p.jsonl", preference_rows(10)), tokenizer, 256
    )
    seqs = data.reference_sequences(snap)
    kw = dict(
        cache_dir=str(tmp_path / "cache"),
        max_length=256,
        pad_id=tokenizer.pad_token_id,
        batch_size=3,
        device=torch.device("cpu"),
    )
    loads = []

    def load(path):
        loads.append(path)
        return load_model(path, torch.device("cpu")).eval()

    cached, hit = reference.precompute(load, model_dir, snap.sha256, seqs, **kw)
    again, hit_again = reference.precompute(load, model_dir, snap.sha256, seqs, **kw)
    assert (hit, hit_again, len(loads)) == (False, True, 1)  # scored once, then read from disk
    assert torch.equal(cached, again) and cached.shape == (20,)

    ref_model = load(model_dir)
    policy = load(model_dir)
    with torch.no_grad():  # move the policy away from the reference so the losses are not all log 2
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    idx = [7, 2, 5, 0]
    batch = data.make_batch(snap, idx, 256, tokenizer.pad_token_id)
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    with torch.no_grad():
        pol, lengths = sequence_logps(policy, *args)
        live, _ = sequence_logps(ref_model, *args)
    from_cache = torch.cat([cached[idx], cached[len(snap.rows) + torch.tensor(idx)]])
    assert_close(from_cache, live, atol=1e-5, rtol=1e-6)
    for loss_type in ("sigmoid", "ipo"):
        a = dpo_loss(
            *pol.chunk(2),
            *from_cache.chunk(2),
            loss_type=loss_type,
            chosen_lengths=lengths[:4],
            rejected_lengths=lengths[4:],
        )
        b = dpo_loss(
            *pol.chunk(2),
            *live.chunk(2),
            loss_type=loss_type,
            chosen_lengths=lengths[:4],
            rejected_lengths=lengths[4:],
        )
        assert_close(a.losses, b.losses, atol=1e-5, rtol=1e-5)


def test_cache_key_depends_on_snapshot_reference_and_tokens(model_dir, tmp_path):
    seqs = [data.Sequence([1, 2], [3, 4])]
    key = reference.cache_key("abc", model_dir, seqs, 64)
    assert key == reference.cache_key("abc", model_dir, seqs, 64)
    assert key != reference.cache_key("abd", model_dir, seqs, 64)
    assert key != reference.cache_key("abc", str(tmp_path), seqs, 64)
    assert key != reference.cache_key("abc", model_dir, [data.Sequence([1, 2, 3], [4])], 64)


def _train_losses(out_dir) -> list[float]:
    with open(os.path.join(out_dir, "metrics.jsonl")) as fh:
        return [r["loss"] for r in map(json.loads, fh) if r["type"] == "train"]


def test_training_with_precomputed_and_live_reference_agree(model_dir, tmp_path):
    for algorithm, rows in (("dpo", preference_rows(12)), ("kto", kto_rows(12))):
        path = write_jsonl(tmp_path / f"{algorithm}.jsonl", rows)
        runs = {}
        for precompute in (True, False):
            out = str(tmp_path / f"{algorithm}-{precompute}")
            main(
                TrainConfig(
                    train_path=path,
                    policy_path=model_dir,
                    output_dir=out,
                    algorithm=algorithm,
                    lr=1e-3,
                    batch_size=4,
                    eval_fraction=0.0,
                    precompute_ref=precompute,
                    device="cpu",
                )
            )
            runs[precompute] = _train_losses(out)
        assert len(runs[True]) == 3
        assert_close(torch.tensor(runs[True]), torch.tensor(runs[False]), atol=1e-5, rtol=1e-5)
