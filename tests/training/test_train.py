"""training.core.train: the loop learns, every algorithm runs, resume is exact, no Django."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from training.core import checkpoint
from training.core.config import TrainConfig, build_parser, config_from_args
from training.core.train import METRIC_PREFIX, main

from .conftest import build_model, kto_rows, preference_rows, write_jsonl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def records(out_dir, kind=None) -> list[dict]:
    with open(os.path.join(out_dir, "metrics.jsonl")) as fh:
        rows = [json.loads(line) for line in fh]
    return [r for r in rows if kind is None or r["type"] == kind]


@pytest.fixture
def pairs_path(tmp_path):
    return write_jsonl(tmp_path / "pairs.jsonl", preference_rows(20))


def config(tmp_path, model_dir, train_path, name, **kw) -> TrainConfig:
    base = dict(
        train_path=train_path,
        policy_path=model_dir,
        output_dir=str(tmp_path / name),
        lr=1e-3,
        epochs=2,
        batch_size=4,
        eval_fraction=0.2,
        device="cpu",  # exact resume and tight tolerances assume CPU float32
    )
    return TrainConfig(**(base | kw))


def test_dpo_learns_the_toy_preference(tmp_path, model_dir, pairs_path, capsys):
    summary = main(config(tmp_path, model_dir, pairs_path, "dpo"))
    train = records(tmp_path / "dpo", "train")
    assert len(train) == summary["total_steps"] == 8  # 16 train pairs / 4 per step * 2 epochs
    assert train[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1
    assert train[-1]["loss"] < 0.55 and train[-1]["reward_accuracy"] == 1.0
    assert summary["eval"]["reward_accuracy"] == 1.0 and summary["eval"]["rows"] == 4
    assert summary["eval"]["reward_margin"] > 0
    for key in (
        "loss",
        "reward_accuracy",
        "reward_margin",
        "chosen_logps",
        "rejected_logps",
        "kl",
        "grad_norm",
        "lr",
        "tokens_per_s",
    ):
        assert train[-1][key] is not None, key
    # the same records reach stdout, one JSON per line after the prefix
    printed = [
        json.loads(line[len(METRIC_PREFIX) :])
        for line in capsys.readouterr().out.splitlines()
        if line.startswith(METRIC_PREFIX)
    ]
    assert printed == records(tmp_path / "dpo")
    assert [r["type"] for r in printed] == ["start"] + ["train"] * 8 + ["eval", "end"]


def test_kto_learns_thumbs_up_and_down(tmp_path, model_dir):
    path = write_jsonl(tmp_path / "kto.jsonl", kto_rows(16))
    held_out = write_jsonl(tmp_path / "kto-eval.jsonl", kto_rows(24)[16:])  # 4 up, 4 down
    summary = main(config(tmp_path, model_dir, path, "kto", algorithm="kto", eval_path=held_out))
    train = records(tmp_path / "kto", "train")
    assert train[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # z0 with policy == reference
    assert train[0]["loss"] == pytest.approx(0.5, abs=1e-4)  # 1 - sigma(0)
    assert train[-1]["loss"] < train[0]["loss"] - 0.05
    assert summary["eval"]["rows"] == 8 and summary["eval"]["reward_accuracy"] == 1.0
    assert summary["eval"]["chosen_reward"] > 0 > summary["eval"]["rejected_reward"]


@pytest.mark.parametrize("algorithm", ["ipo", "simpo", "orpo"])
def test_other_algorithms_run_and_improve(tmp_path, model_dir, pairs_path, algorithm):
    summary = main(
        config(
            tmp_path,
            model_dir,
            pairs_path,
            algorithm,
            algorithm=algorithm,
            epochs=1,
            gradient_checkpointing=algorithm == "simpo",
        )
    )
    train = records(tmp_path / algorithm, "train")
    assert summary["status"] == "finished" and len(train) == 4
    assert train[-1]["loss"] < train[0]["loss"]
    assert summary["loss_type"] == ("ipo" if algorithm == "ipo" else "sigmoid")
    if algorithm == "orpo":
        assert train[-1]["nll"] > 0
    if algorithm in ("simpo", "orpo"):
        assert train[-1]["kl"] is None  # no reference model


def test_resume_after_interruption_reproduces_the_uninterrupted_run(
    tmp_path, model_dir, pairs_path
):
    kw = dict(batch_size=2, grad_accum=2, checkpoint_every=2, warmup=1, schedule="cosine")
    main(config(tmp_path, model_dir, pairs_path, "straight", **kw))  # 8 steps, 4 per epoch

    cfg = config(tmp_path, model_dir, pairs_path, "interrupted", **kw)
    out = cfg.output_dir
    assert main(TrainConfig(**(cfg.to_dict() | {"stop_after_steps": 3}))) == {
        "status": "stopped",
        "step": 3,
        "total_steps": 8,
    }
    # a partial run has checkpoints (the last one at step 2) and nothing that looks final
    assert not os.path.exists(os.path.join(out, "final"))
    assert checkpoint.load_latest_checkpoint(out)["step"] == 2
    with pytest.raises(ValueError, match="--resume"):
        main(cfg)
    with pytest.raises(ValueError, match="lr"):  # a different run cannot continue this one
        main(TrainConfig(**(cfg.to_dict() | {"resume": True, "lr": 5e-4})))
    resumed = TrainConfig(**(cfg.to_dict() | {"resume": True}))
    assert (
        main(TrainConfig(**(resumed.to_dict() | {"stop_after_steps": 3})))["step"] == 5
    )  # mid-epoch 1
    summary = main(resumed)

    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(os.path.join(out, "final", "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert [r["step"] for r in records(out, "train")] == list(
        range(1, 9)
    )  # redone steps logged once
    assert summary["step"] == 8 and not os.path.exists(os.path.join(out, "checkpoints"))
    assert main(resumed) == summary  # a finished run answers from final/prefloop_training.json


def test_final_model_is_complete_hugging_face_output(tmp_path, model_dir, pairs_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = main(config(tmp_path, model_dir, pairs_path, "run", epochs=1, keep_checkpoints=True))
    final = summary["final_dir"]
    info = json.load(open(os.path.join(final, "prefloop_training.json")))
    assert info["config"]["algorithm"] == "dpo" and info["summary"]["eval"]["rows"] == 4
    assert AutoModelForCausalLM.from_pretrained(final).num_parameters() > 0
    assert AutoTokenizer.from_pretrained(final).chat_template
    assert os.path.exists(os.path.join(tmp_path, "run", "checkpoints", "latest"))
    assert not [n for n in os.listdir(tmp_path / "run") if n.startswith(".")]  # no temporaries left


def test_final_model_keeps_the_input_dtype_and_generation_settings(tmp_path, tokenizer, pairs_path):
    from transformers import AutoConfig

    bf16_dir = str(tmp_path / "bf16-policy")
    build_model(len(tokenizer)).to(torch.bfloat16).save_pretrained(bf16_dir)
    tokenizer.save_pretrained(bf16_dir)
    summary = main(config(tmp_path, bf16_dir, pairs_path, "bf16", epochs=1, eval_fraction=0.0))
    weights = load_file(os.path.join(summary["final_dir"], "model.safetensors"))
    assert {w.dtype for w in weights.values()} == {
        torch.bfloat16
    }  # trained in float32, saved as given
    assert AutoConfig.from_pretrained(summary["final_dir"]).use_cache is not False
    assert summary["eval"] is None


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"algorithm": "kto", "lr": 1e-4, "batch_size": 16, "precompute_ref": False})
    )
    cfg = config_from_args(["--config", str(path), "--lr", "3e-5", "--gradient-checkpointing"])
    assert (cfg.algorithm, cfg.lr, cfg.batch_size, cfg.precompute_ref) == ("kto", 3e-5, 16, False)
    assert cfg.gradient_checkpointing and cfg.resolved_beta() == 0.1 and cfg.epochs == 1
    assert config_from_args(["--algorithm", "simpo"]).resolved_beta() == 2.0
    for action in build_parser()._actions:
        assert action.help, action.dest
    path.write_text(json.dumps({"lr": 1e-4, "learning_rate": 1}))
    with pytest.raises(ValueError, match="learning_rate"):
        config_from_args(["--config", str(path)])


def test_bad_configs_are_refused(tmp_path, model_dir, pairs_path):
    with pytest.raises(ValueError, match="loss-type"):
        main(config(tmp_path, model_dir, pairs_path, "bad", loss_type="nope"))
    with pytest.raises(ValueError, match="batch-size >= 2"):
        main(config(tmp_path, model_dir, pairs_path, "bad", algorithm="kto", batch_size=1))
    kto = write_jsonl(tmp_path / "k.jsonl", kto_rows(4))
    with pytest.raises(ValueError, match="preference rows"):
        main(config(tmp_path, model_dir, kto, "bad2"))


def test_training_never_imports_django():
    code = (
        "import sys, training.core.train, training.losses, training.core.reference; "
        "assert 'django' not in sys.modules, 'django was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
