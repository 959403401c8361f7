"""torchrun with 2 CPU processes (gloo) trains exactly as one process with the same global batch.

Each test launches ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m
training.core.train ...`` (the documented command line) and compares the final weights and the
per-step losses with ``main()`` run in this process. Batches are deliberately uneven (odd batch
sizes, a held-out set smaller than a batch per rank) so the shard weighting, the stand-in rows
and the cross-rank metric reduction are all exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from training.core.config import TrainConfig
from training.core.train import main

from .conftest import kto_rows, preference_rows, write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def torchrun(args: list[str], nproc: int = 2) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "training.core.train", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        cmd + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def flags(cfg: TrainConfig) -> list[str]:
    """The command line of ``cfg`` (only the fields the tests set)."""
    out = []
    for key, value in cfg.to_dict().items():
        if value == TrainConfig.__dataclass_fields__[key].default:
            continue
        flag = "--" + key.replace("_", "-")
        out += (
            [flag]
            if value is True
            else [f"--no-{flag[2:]}"]
            if value is False
            else [flag, str(value)]
        )
    return out


def train_losses(out_dir: str) -> list[float]:
    with open(os.path.join(out_dir, "metrics.jsonl")) as fh:
        return [r["loss"] for r in map(json.loads, fh) if r["type"] == "train"]


def assert_same_final_model(a_dir: str, b_dir: str) -> None:
    a = load_file(os.path.join(a_dir, "final", "model.safetensors"))
    b = load_file(os.path.join(b_dir, "final", "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert_close(b[name], a[name], atol=2e-5, rtol=1e-4, msg=name)


def test_ddp_two_processes_match_one(tmp_path, model_dir):
    train = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(10))
    held_out = write_jsonl(tmp_path / "eval.jsonl", preference_rows(13)[10:])
    base = dict(
        train_path=train,
        eval_path=held_out,
        policy_path=model_dir,
        lr=1e-3,
        batch_size=3,  # shards of 2 and 1 rows; the last micro-batch (1 row) leaves a rank idle
        grad_accum=2,
        epochs=1,
        device="cpu",
    )
    one = TrainConfig(**base, output_dir=str(tmp_path / "one"))
    two = TrainConfig(**base, output_dir=str(tmp_path / "two"))
    single = main(one)
    stdout = torchrun(flags(two))

    summary = json.loads(stdout.strip().splitlines()[-1])  # rank 0 prints the summary
    assert summary["world_size"] == 2 and summary["step"] == single["step"] == 2
    assert_close(train_losses(two.output_dir), train_losses(one.output_dir), atol=1e-5, rtol=0)
    losses = train_losses(two.output_dir)
    assert losses[0] == pytest.approx(0.6931, abs=1e-3) and losses[-1] < losses[0]
    for key in ("loss", "reward_accuracy", "reward_margin", "chosen_logps", "kl"):
        assert summary["eval"][key] == pytest.approx(single["eval"][key], abs=1e-4), key
    assert summary["eval"]["rows"] == 3
    assert_same_final_model(one.output_dir, two.output_dir)
    start = json.loads(open(os.path.join(two.output_dir, "metrics.jsonl")).readline())
    assert (start["world_size"], start["fsdp"], start["prefix_sharing"]) == (2, False, True)


def test_fsdp_kto_interrupted_and_resumed_matches_one_process(tmp_path, model_dir):
    train = write_jsonl(tmp_path / "kto.jsonl", kto_rows(12))
    base = dict(
        train_path=train,
        policy_path=model_dir,
        algorithm="kto",
        lr=1e-3,
        batch_size=5,  # KTO blocks of 5 and 4 rows; the KL point z0 is a whole-block mean
        epochs=1,
        eval_fraction=0.25,
        checkpoint_every=1,
        device="cpu",
    )
    one = TrainConfig(**base, output_dir=str(tmp_path / "one"))
    two = TrainConfig(**base, output_dir=str(tmp_path / "two"), fsdp=True)
    single = main(one)
    first = torchrun(flags(TrainConfig(**(two.to_dict() | {"stop_after_steps": 1}))))
    assert json.loads(first.strip().splitlines()[-1])["status"] == "stopped"
    assert not os.path.exists(os.path.join(two.output_dir, "final"))
    summary = json.loads(torchrun(flags(two) + ["--resume"]).strip().splitlines()[-1])

    assert summary["status"] == "finished" and summary["world_size"] == 2
    assert_close(train_losses(two.output_dir), train_losses(one.output_dir), atol=1e-5, rtol=0)
    for key in ("loss", "reward_accuracy", "chosen_reward", "rejected_reward", "kl"):
        assert summary["eval"][key] == pytest.approx(single["eval"][key], abs=1e-4), key
    assert_same_final_model(one.output_dir, two.output_dir)
    # the final model is a complete, plain Hugging Face model (FSDP's full state dict)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(os.path.join(two.output_dir, "final"))
    assert not any(isinstance(p, torch.distributed.tensor.DTensor) for p in model.parameters())
