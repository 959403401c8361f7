"""Timing one training run of each trainer for ``bench/training.py``: our
``training.core.train.main`` and TRL's ``DPOTrainer`` / ``KTOTrainer``, each timed by its own
per-step hook, with the tokens credited over the timed steps counted from its own batches."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass

import torch


class StepClock:
    """Timestamps at the start of training and at the end of every optimizer step."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.ends: list[float] = []

    def begin(self) -> None:
        self.start = time.perf_counter()

    def step_end(self, sync: bool) -> None:
        if sync:
            torch.cuda.synchronize()
        self.ends.append(time.perf_counter())

    def seconds(self, warmup: int) -> float:
        t0 = self.ends[warmup - 1] if warmup else self.start
        return self.ends[-1] - t0


@dataclass(frozen=True)
class Run:
    seconds: float
    tokens: int  # tokens credited over the timed steps


def time_prefloop(
    model_dir: str,
    rows: list[dict],
    work: str,
    *,
    algorithm: str,
    batch: int,
    steps: int,
    warmup: int,
    device: str,
    **overrides,
) -> Run:
    """The timed steps of our trainer (``training.core.train.main``)."""
    from training.core.config import TrainConfig
    from training.core.train import main

    data = os.path.join(work, f"{algorithm}.jsonl")
    with open(data, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    cfg = TrainConfig(
        train_path=data,
        policy_path=model_dir,
        output_dir=tempfile.mkdtemp(prefix=f"prefloop-{algorithm}-", dir=work),
        algorithm=algorithm,
        lr=1e-5,
        epochs=1,
        batch_size=batch,
        eval_fraction=0.0,
        max_length=10_000,
        device=device,
        checkpoint_every=10**9,  # no checkpoint inside the timed steps
        **overrides,
    )
    clock, sync, tokens = StepClock(), device.startswith("cuda"), []

    def on_record(record: dict) -> None:
        if record["type"] == "start":
            clock.begin()
        elif record["type"] == "train":
            clock.step_end(sync)
            tokens.append(round(record["tokens_per_s"] * record["step_s"]))

    with contextlib.redirect_stdout(io.StringIO()):
        summary = main(cfg, on_record=on_record)
    assert summary["step"] == warmup + steps, summary
    return Run(clock.seconds(warmup), sum(tokens[warmup:]))


def _trl_callback(clock: StepClock, sync: bool):
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.begin()

        def on_step_end(self, args, state, control, **kw):
            clock.step_end(sync)

    return Clock()


def _counting(collate, counts: list[int]):
    """TRL's collator, recording each batch's tokens (its rows' attention masks; no KL rows)."""

    def wrapped(examples):
        out = collate(examples)
        counts.append(int(out["attention_mask"].sum()))
        return out

    return wrapped


def time_trl(
    model_dir: str,
    rows: list[dict],
    work: str,
    *,
    algorithm: str,
    batch: int,
    steps: int,
    warmup: int,
    device: str,
    gradient_checkpointing: bool,
    **overrides,
) -> Run:
    """The timed steps of TRL's ``DPOTrainer`` / ``KTOTrainer``."""
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    import trl

    Config, Trainer = (
        (trl.DPOConfig, trl.DPOTrainer) if algorithm == "dpo" else (trl.KTOConfig, trl.KTOTrainer)
    )
    cuda = device.startswith("cuda")
    args = Config(
        output_dir=tempfile.mkdtemp(prefix=f"trl-{algorithm}-", dir=work),
        per_device_train_batch_size=batch,
        max_steps=warmup + steps,
        learning_rate=1e-5,
        max_length=10_000,
        gradient_checkpointing=gradient_checkpointing,
        bf16=cuda,
        use_cpu=not cuda,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        **overrides,
    )
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    clock, counts = StepClock(), []
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        callbacks=[_trl_callback(clock, cuda)],
    )
    _check_lengths(trainer.train_dataset, algorithm, rows)
    trainer.data_collator = _counting(trainer.data_collator, counts)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    assert len(clock.ends) == warmup + steps, len(clock.ends)
    del trainer, model
    if cuda:
        torch.cuda.empty_cache()
    return Run(clock.seconds(warmup), sum(counts[warmup : warmup + steps]))


def _check_lengths(dataset, algorithm: str, rows: list[dict]) -> None:
    """TRL tokenised every row to the lengths we count: one token per word, plus EOS."""
    columns = ("chosen", "rejected") if algorithm == "dpo" else ("completion",)
    assert len(dataset) == len(rows)
    assert [len(ids) for ids in dataset["prompt_ids"]] == [len(r["prompt"].split()) for r in rows]
    for c in columns:
        expected = [len(r[c].split()) + 1 for r in rows]
        assert [len(ids) for ids in dataset[f"{c}_ids"]] == expected, c
