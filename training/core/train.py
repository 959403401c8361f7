"""Preference training on an export snapshot: DPO (every TRL loss type), IPO, KTO, SimPO, ORPO.

Run it (one process; CPU or one GPU)::

    python -m training.core.train --policy-path MODEL --train-path snapshot.jsonl \\
        --output-dir runs/r1 --algorithm dpo --beta 0.1 --lr 1e-4 --epochs 2 --batch-size 32

or ``--config run.json`` with the same keys (flags win); ``--help`` lists every flag. From Python
(the Celery task does this): ``summary = main(TrainConfig(...))``.

``main`` reads top to bottom: data -> models -> (reference log-probs, cached) -> optimizer ->
for each step: log-probs, loss, backward, clip, step, log, evaluate, checkpoint -> held-out
evaluation -> final model. Every step prints one line ``PREFLOOP_METRIC {json}`` to stdout (and
appends the JSON to ``output_dir/metrics.jsonl``), so a parent process can follow progress by
reading lines with that prefix. Record types: ``start``, ``train``, ``eval``, ``end``.

Choices worth knowing (they follow TRL 1.16 unless said otherwise):

- log-probs are summed over completion tokens; IPO/SimPO/ORPO length-normalise inside the loss.
- KTO's KL reference point uses the mismatched (prompt_i, completion_{i-1}) pairs of the same
  micro-batch, under no_grad, clamped at 0 (data.kto_blocks explains the fixed blocks).
- ORPO's NLL term is the token-mean NLL of the *chosen completion* tokens (the paper's L_SFT).
  TRL's ORPOTrainer also counts the prompt tokens; we do not train on prompts.
- The reference is the initial policy unless ``--reference-path`` says otherwise.
- Metric definitions (``reward_accuracy``, ``kl``, ...) are in ``training/core/objective.py``.
- Single process. Nothing here is distributed (no DDP/FSDP); use one GPU or the CPU.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time

import torch

from training.core import checkpoint, data, objective, reference
from training.core.config import TrainConfig, check_config, config_from_args

METRIC_PREFIX = "PREFLOOP_METRIC "


def load_model(path: str, device: torch.device):
    """A causal LM in float32 with dropout off (as TRL's ``disable_dropout=True``)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for attr in ("attention_dropout", "dropout"):  # functional dropout (e.g. Qwen2 attention)
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, 0.0)
    return model.to(device)


def saved_dtype(path: str) -> torch.dtype:
    """The dtype the checkpoint at ``path`` was stored in; the final model is saved in it too."""
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(path), "dtype", None)
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def lr_factor(schedule: str, warmup: int, total: int):
    def factor(step: int) -> float:  # step = optimizer steps done so far
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def emit(path: str, record: dict) -> None:
    record = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
    line = json.dumps(record)
    print(METRIC_PREFIX + line, flush=True)
    with open(path, "a") as fh:
        fh.write(line + "\n")


def main(cfg: TrainConfig) -> dict:
    """Train, evaluate and save ``output_dir/final``; returns the run summary (also in
    ``final/prefloop_training.json``). With ``cfg.resume`` a finished run returns its summary
    at once and an unfinished one continues from its last checkpoint."""
    check_config(cfg)
    if cfg.resume and (done := checkpoint.read_final(cfg.output_dir)) is not None:
        return done["summary"]
    leftovers = [
        d
        for d in (checkpoint.FINAL, checkpoint.CHECKPOINTS)
        if os.path.exists(os.path.join(cfg.output_dir, d))
    ]
    if leftovers and not cfg.resume:
        raise ValueError(
            f"{cfg.output_dir} already holds a run ({leftovers}); pass --resume "
            "to continue it or use an empty --output-dir"
        )
    os.makedirs(cfg.output_dir, exist_ok=True)
    metrics_path = os.path.join(cfg.output_dir, "metrics.jsonl")
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    use_autocast = cfg.bf16 and device.type == "cuda"

    def autocast():  # bf16 autocast on CUDA only; weights stay float32
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast)

    t_begin = time.time()

    # ---- data: snapshot -> token ids -> train / eval splits
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.policy_path)
    pad_id = (
        tokenizer.pad_token_id
        if tokenizer.pad_token_id is not None
        else tokenizer.eos_token_id or 0
    )
    snap, train, evals = objective.load_splits(cfg, tokenizer)

    # ---- models: policy (trained), reference (frozen: precomputed log-probs or a live model)
    policy = load_model(cfg.policy_path, device)
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.train()
    ref_path = cfg.reference_path or cfg.policy_path
    ref_model, ref_cache_hits = None, []
    if cfg.needs_reference() and cfg.precompute_ref:
        for split in filter(None, (train, evals)):
            split.ref, hit = reference.precompute(
                lambda p: load_model(p, device).eval(),
                ref_path,
                split.snap.sha256,
                data.reference_sequences(split.snap, split.kl),
                cache_dir=cfg.ref_cache_dir or os.path.join(cfg.output_dir, "ref_cache"),
                max_length=cfg.max_length,
                pad_id=pad_id,
                batch_size=cfg.batch_size,
                device=device,
                chunk_size=cfg.logps_chunk_size,
                autocast=use_autocast,
            )
            ref_cache_hits.append(hit)
    elif cfg.needs_reference():
        ref_model = load_model(ref_path, device).eval().requires_grad_(False)

    def ref_fn_for(split: objective.Split):
        return lambda batch: objective.reference_logps(
            split, batch, ref_model, cfg.logps_chunk_size
        )

    def batches_of(split: objective.Split, idx_batches: list[list[int]]):
        for idx in idx_batches:
            b = data.make_batch(split.snap, idx, cfg.max_length, pad_id, split.kl)
            yield {k: v.to(device) for k, v in b.items()}

    def evaluate(split: objective.Split) -> dict:
        policy.eval()
        stats = []
        with torch.no_grad(), autocast():
            for batch in batches_of(split, split.eval_batches(cfg.batch_size)):
                stats.append(objective.compute_loss(cfg, policy, batch, ref_fn_for(split))[1])
        policy.train()
        return objective.aggregate(stats) | {"rows": len(split.snap.rows)}

    # ---- optimizer and schedule
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    micro_per_epoch = len(data.epoch_batches(train.snap, cfg.batch_size, cfg.seed, 0, train.blocks))
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum)
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg.schedule, cfg.warmup, total_steps)
    )

    # ---- resume: model, optimizer, scheduler, RNG, position and the epoch's data order
    step, start_epoch, start_group, saved_order = 0, 0, 0, None
    state = checkpoint.load_latest_checkpoint(cfg.output_dir) if cfg.resume else None
    if state is not None:
        checkpoint.check_resume_config(state["config"], cfg.to_dict())
        policy.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step, start_epoch, start_group = state["step"], state["epoch"], state["group"]
        saved_order = state["order"]
        checkpoint.truncate_metrics(metrics_path, step)
    elif os.path.exists(metrics_path):
        os.remove(metrics_path)
    start_step = step
    emit(
        metrics_path,
        {
            "type": "start",
            "step": step,
            "total_steps": total_steps,
            "algorithm": cfg.algorithm,
            "train_rows": len(train.snap.rows),
            "eval_rows": len(evals.snap.rows) if evals else 0,
            "truncated_rows": snap.num_truncated,
            "dropped_rows": snap.num_dropped,
            "ref_cache_hits": ref_cache_hits,
            "resumed": state is not None,
            "device": str(device),
        },
    )

    # ---- the loop
    last = {}
    for epoch in range(start_epoch, cfg.epochs):
        if saved_order is not None and epoch == start_epoch:
            order = saved_order
        else:
            order = data.epoch_batches(train.snap, cfg.batch_size, cfg.seed, epoch, train.blocks)
        groups = [order[i : i + cfg.grad_accum] for i in range(0, len(order), cfg.grad_accum)]
        for g in range(start_group if epoch == start_epoch else 0, len(groups)):
            t0 = time.perf_counter()
            stats, tokens = [], 0
            for batch in batches_of(train, groups[g]):
                with autocast():
                    loss, s = objective.compute_loss(cfg, policy, batch, ref_fn_for(train))
                (loss / len(groups[g])).backward()
                stats.append(s)
                tokens += int(batch["attention_mask"].sum())
            max_norm = cfg.clip if cfg.clip > 0 else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm).item()
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            last = {
                "type": "train",
                "step": step,
                "total_steps": total_steps,
                "epoch": epoch,
                **objective.aggregate(stats),
                "grad_norm": grad_norm,
                "lr": lr,
                "tokens_per_s": tokens / dt,
                "step_s": dt,
            }
            emit(metrics_path, last)

            if evals and cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                emit(metrics_path, {"type": "eval", "step": step, **evaluate(evals)})
            end_of_epoch = g + 1 == len(groups)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or (
                not cfg.checkpoint_every and end_of_epoch
            ):
                checkpoint.save_checkpoint(
                    cfg.output_dir,
                    step,
                    {
                        "model": policy.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "rng": checkpoint.rng_state(),
                        "step": step,
                        "epoch": epoch + end_of_epoch,
                        "group": 0 if end_of_epoch else g + 1,
                        "order": None if end_of_epoch else order,
                        "config": cfg.to_dict(),
                    },
                )
            if (
                cfg.stop_after_steps
                and step - start_step >= cfg.stop_after_steps
                and step < total_steps
            ):
                return {"status": "stopped", "step": step, "total_steps": total_steps}

    # ---- held-out evaluation and the final model
    eval_metrics = evaluate(evals) if evals else None
    if eval_metrics:
        emit(metrics_path, {"type": "eval", "step": step, **eval_metrics})
    summary = {
        "status": "finished",
        "step": step,
        "total_steps": total_steps,
        "algorithm": cfg.algorithm,
        "beta": cfg.resolved_beta(),
        "loss_type": cfg.resolved_loss_type(),
        "train_rows": len(train.snap.rows),
        "truncated_rows": snap.num_truncated,
        "dropped_rows": snap.num_dropped,
        "snapshot_sha256": snap.sha256,
        "last_train": last,
        "eval": eval_metrics,
        "elapsed_s": time.time() - t_begin,
        "final_dir": os.path.join(cfg.output_dir, checkpoint.FINAL),
    }
    import transformers

    policy.to(saved_dtype(cfg.policy_path))  # train in float32, save as the input was stored
    checkpoint.save_final(
        cfg.output_dir,
        policy,
        tokenizer,
        {
            "config": cfg.to_dict(),
            "summary": summary,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        },
    )
    if not cfg.keep_checkpoints:
        shutil.rmtree(os.path.join(cfg.output_dir, checkpoint.CHECKPOINTS), ignore_errors=True)
    emit(
        metrics_path,
        {
            "type": "end",
            "step": step,
            "eval_accuracy": eval_metrics and eval_metrics.get("reward_accuracy"),
        },
    )
    return summary


if __name__ == "__main__":
    result = main(config_from_args(sys.argv[1:]))
    print(json.dumps(result, default=str))
