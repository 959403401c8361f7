"""LoRA via peft: only adapters train, the reference is the policy with adapters off (no second
model), checkpoints hold adapters, the final model is merged into a plain HF model."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from training.core import data, lora, modelio, objective
from training.core.config import TrainConfig
from training.core.logps import LogpsHead, sequence_logps
from training.core.train import main

from .conftest import build_model, preference_rows, write_jsonl

pytest.importorskip("peft")


@pytest.fixture
def pairs_path(tmp_path):
    return write_jsonl(tmp_path / "pairs.jsonl", preference_rows(12))


def config(tmp_path, model_dir, train_path, name, **kw) -> TrainConfig:
    base = dict(
        train_path=train_path,
        policy_path=model_dir,
        output_dir=str(tmp_path / name),
        lr=1e-2,
        epochs=2,
        batch_size=4,
        eval_fraction=0.0,
        device="cpu",
        lora_r=4,
    )
    return TrainConfig(**(base | kw))


def test_lora_steps_change_only_the_adapters(tokenizer):
    cfg = TrainConfig(lora_r=4, lora_alpha=8, lora_target_modules="q_proj, v_proj", lr=1e-2)
    base = build_model(len(tokenizer))
    plain = build_model(len(tokenizer))  # the same weights (same seed), never adapted
    model = lora.add_adapters(base, cfg).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj"}

    snap = data.tokenize_rows(preference_rows(8), tokenizer, 256)
    split, head = objective.Split(snap), LogpsHead(model)
    reference = lora.AdaptersOff(head, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    losses = []
    for step in range(3):
        batch = data.make_batch(snap, [0, 1, 2, 3], 256, tokenizer.pad_token_id, None, True)
        ref_fn = lambda b: objective.reference_logps(split, b, reference, 1024)  # noqa: E731
        loss, _ = objective.compute_loss(cfg, head, batch, ref_fn)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if step == 0:  # adapters start at B = 0: policy == reference
            assert loss.item() == pytest.approx(0.6931, abs=1e-4)
    assert losses[-1] < losses[0]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)

    # adapters off = the untouched base model, exactly (the reference needs no second copy)
    batch = data.make_batch(snap, [4, 5], 256, tokenizer.pad_token_id)
    args = (batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    with torch.no_grad():
        expected, _ = sequence_logps(plain, *args)
        with model.disable_adapter():
            off, _ = sequence_logps(model, *args)
        on, _ = sequence_logps(model, *args)
    assert_close(off, expected, atol=1e-6, rtol=0)
    assert (on - expected).abs().max() > 1e-3


def test_lora_run_saves_a_merged_loadable_model(tmp_path, model_dir, pairs_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    loads = []
    real_load = modelio.load_model
    monkeypatch.setattr(modelio, "load_model", lambda *a: loads.append(a[0]) or real_load(*a))
    cfg = config(tmp_path, model_dir, pairs_path, "run", keep_checkpoints=True)
    summary = main(cfg)
    assert loads == [model_dir]  # the policy only: no reference model, precomputed or live

    with open(os.path.join(cfg.output_dir, "metrics.jsonl")) as fh:
        steps = [r for r in map(json.loads, fh) if r["type"] == "train"]
    assert steps[0]["loss"] == pytest.approx(0.6931, abs=1e-3) and steps[-1]["loss"] < 0.6
    final = summary["final_dir"]
    assert not os.path.exists(os.path.join(final, "adapter_config.json"))  # merged, not PEFT
    info = json.load(open(os.path.join(final, "prefloop_training.json")))
    assert info["lora"]["r"] == 4 and info["lora"]["merged"] is True
    assert 0 < info["lora"]["trainable_parameters"] < info["lora"]["total_parameters"]
    assert info["config"]["lora_target_modules"] == "all-linear"

    merged = AutoModelForCausalLM.from_pretrained(final)
    base = dict(AutoModelForCausalLM.from_pretrained(model_dir).named_parameters())
    assert not any("lora" in n for n, _ in merged.named_parameters())
    changed = {n for n, p in merged.named_parameters() if not torch.equal(p, base[n])}
    assert changed and all(n.endswith("proj.weight") for n in changed)  # linear layers only
    assert not any("embed" in n or "norm" in n for n in changed)

    # checkpoints hold the adapters only
    state = torch.load(
        os.path.join(cfg.output_dir, "checkpoints", "step-00000006", "state.pt"),
        weights_only=False,
    )
    assert state["model"] and all("lora_" in k for k in state["model"])


def test_lora_live_reference_and_resume_match_the_straight_run(tmp_path, model_dir, pairs_path):
    straight = main(config(tmp_path, model_dir, pairs_path, "straight"))
    live = main(config(tmp_path, model_dir, pairs_path, "live", precompute_ref=False))
    assert live["last_train"]["loss"] == pytest.approx(straight["last_train"]["loss"], abs=1e-5)

    cfg = config(tmp_path, model_dir, pairs_path, "resumed", checkpoint_every=2)
    assert main(TrainConfig(**(cfg.to_dict() | {"stop_after_steps": 3})))["status"] == "stopped"
    resumed = main(TrainConfig(**(cfg.to_dict() | {"resume": True})))
    assert resumed["step"] == straight["step"] == 6
    a = load_file(os.path.join(straight["final_dir"], "model.safetensors"))
    b = load_file(os.path.join(resumed["final_dir"], "model.safetensors"))
    for name in a:
        assert torch.equal(a[name], b[name]), name
