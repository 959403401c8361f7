"""Preference training on an export snapshot: DPO (every TRL loss type), IPO, KTO, SimPO, ORPO.

Run it (one process; CPU or one GPU)::

    python -m training.core.train --policy-path MODEL --train-path snapshot.jsonl \\
        --output-dir runs/r1 --algorithm dpo --beta 0.1 --lr 1e-4 --epochs 2 --batch-size 32

or on N GPUs of a node (``--fsdp`` shards the model instead of replicating it;
``docs/training.md`` covers clusters and SLURM)::

    torchrun --nproc_per_node=N -m training.core.train --policy-path MODEL ...

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
- Several processes (``torchrun``): ``--batch-size`` is the global micro-batch, split across the
  ranks, so the run optimises exactly as one process would; ``distributed.py`` says who does what.
- LoRA (``--lora-r``): adapters only, the reference is the policy with adapters off, the final
  model is merged (``lora.py``).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time

import torch

from training.core import checkpoint, data, distributed, lora, modelio, objective, reference
from training.core.config import TrainConfig, check_config, config_from_args
from training.core.modelio import load_model

__all__ = ["METRIC_PREFIX", "load_model", "main"]

METRIC_PREFIX = "PREFLOOP_METRIC "


def pad_token_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id or 0


def start_decision(cfg: TrainConfig) -> tuple[str, object]:
    """("done", summary) for a finished run being resumed, ("error", message), or ("go", None).
    Rank 0 decides (it is the one that writes ``output_dir``) and tells the others."""
    if cfg.resume and (done := checkpoint.read_final(cfg.output_dir)) is not None:
        return "done", done["summary"]
    leftovers = [
        d
        for d in (checkpoint.FINAL, checkpoint.CHECKPOINTS)
        if os.path.exists(os.path.join(cfg.output_dir, d))
    ]
    if leftovers and not cfg.resume:
        return "error", (
            f"{cfg.output_dir} already holds a run ({leftovers}); pass --resume "
            "to continue it or use an empty --output-dir"
        )
    os.makedirs(cfg.output_dir, exist_ok=True)
    return "go", None


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


def emit(path: str, record: dict, on_record=None) -> None:
    record = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
    line = json.dumps(record)
    # one write per line: other ranks share the pipe, and a split write could interleave
    sys.stdout.write(f"{METRIC_PREFIX}{line}\n")
    sys.stdout.flush()
    with open(path, "a") as fh:
        fh.write(line + "\n")
    if on_record is not None:
        on_record(record)


def main(cfg: TrainConfig, on_record=None) -> dict:
    """Train, evaluate and save ``output_dir/final``; returns the run summary (also in
    ``final/prefloop_training.json``). With ``cfg.resume`` a finished run returns its summary
    at once and an unfinished one continues from its last checkpoint. Under ``torchrun`` every
    rank calls it and gets the same summary."""
    check_config(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    d, device = distributed.setup(cfg.device)
    try:
        result = _train(cfg, d, device, on_record)
        distributed.barrier(d)  # no rank destroys the group while a peer still uses it (gloo abort)
        return result
    finally:
        distributed.teardown(d)


def _train(cfg: TrainConfig, d: distributed.Dist, device: torch.device, on_record) -> dict:
    what, detail = distributed.broadcast_object(start_decision(cfg) if d.is_main else None, d)
    if what == "done":
        return detail
    if what == "error":
        raise ValueError(detail)
    metrics_path = os.path.join(cfg.output_dir, "metrics.jsonl")

    def log(record: dict) -> None:  # rank 0 speaks for the run
        if d.is_main:
            emit(metrics_path, record, on_record)

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    t_begin = time.time()

    # ---- data: snapshot -> token ids -> train / eval splits (every rank tokenises all of it)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.policy_path)
    snap, train, evals = objective.load_splits(cfg, tokenizer)

    # ---- models: the policy (LoRA: adapters only) wrapped for DDP / FSDP, and the frozen
    # reference (cached log-probs, a live model, or the policy with its adapters off)
    policy = modelio.load_policy(cfg, d, device)
    pad_id = pad_token_id(tokenizer)
    ref_model, ref_cache_hits = reference.setup(
        cfg, policy, [train, evals], pad_id=pad_id, device=device, d=d
    )
    obj = objective.Objective(cfg, policy.head, ref_model, d, device, pad_id, policy.shared_prefix)

    # ---- optimizer and schedule
    params = policy.trainable()
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    micro_per_epoch = len(data.epoch_batches(train.snap, cfg.batch_size, cfg.seed, 0, train.blocks))
    total_steps = cfg.epochs * math.ceil(micro_per_epoch / cfg.grad_accum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg.schedule, cfg.warmup, total_steps)
    )

    # ---- resume: model, optimizer, scheduler, RNG, position and the epoch's data order
    start = checkpoint.resume(cfg, d, policy, optimizer, scheduler, metrics_path)
    log(
        {
            "type": "start",
            "step": start.step,
            "total_steps": total_steps,
            "algorithm": cfg.algorithm,
            "train_rows": len(train.snap.rows),
            "eval_rows": len(evals.snap.rows) if evals else 0,
            "truncated_rows": snap.num_truncated,
            "dropped_rows": snap.num_dropped,
            "ref_cache_hits": ref_cache_hits,
            "resumed": start.step > 0,
            "device": str(device),
            "world_size": d.world,
            "fsdp": policy.fsdp,
            "lora": cfg.lora_r > 0,
            "prefix_sharing": policy.shared_prefix,
        }
    )

    # ---- the loop
    step, last = start.step, {}
    for epoch in range(start.epoch, cfg.epochs):
        if start.order is not None and epoch == start.epoch:
            order = start.order
        else:
            order = data.epoch_batches(train.snap, cfg.batch_size, cfg.seed, epoch, train.blocks)
        groups = [order[i : i + cfg.grad_accum] for i in range(0, len(order), cfg.grad_accum)]
        for g in range(start.group if epoch == start.epoch else 0, len(groups)):
            t0 = time.perf_counter()
            stats, tokens, n_micro = [], 0, len(groups[g])
            for i, (batch, counts, weight) in enumerate(obj.batches(train, groups[g])):
                # gradients are all-reduced once per step, in the last micro-batch's backward
                with distributed.no_grad_sync(policy.head, sync=i + 1 == n_micro), obj.autocast():
                    loss, s = obj.loss(train, batch, counts)
                    (loss * weight / n_micro).backward()
                stats.append(s)
                tokens += data.batch_tokens(batch) * counts
            grad_norm = distributed.clip_grad_norm(params, cfg.clip if cfg.clip > 0 else math.inf)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            metrics, tokens = obj.aggregate(stats), obj.reduce_sum([tokens])[0]
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            last = {
                "type": "train",
                "step": step,
                "total_steps": total_steps,
                "epoch": epoch,
                **metrics,
                "grad_norm": grad_norm,
                "lr": lr,
                "tokens_per_s": tokens / dt,
                "step_s": dt,
            }
            log(last)

            if evals and cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                log({"type": "eval", "step": step, **obj.evaluate(evals)})
            end_of_epoch = g + 1 == len(groups)
            if checkpoint.due(cfg, step, end_of_epoch):
                resume_at = checkpoint.Position(step, epoch + 1)  # where a resumed run goes on
                if not end_of_epoch:
                    resume_at = checkpoint.Position(step, epoch, g + 1, order)
                checkpoint.save_state(cfg, d, policy, optimizer, scheduler, resume_at=resume_at)
            if cfg.stop_after_steps and step - start.step >= cfg.stop_after_steps:
                if step < total_steps:
                    return {"status": "stopped", "step": step, "total_steps": total_steps}

    # ---- held-out evaluation and the final model
    eval_metrics = obj.evaluate(evals) if evals else None
    if eval_metrics:
        log({"type": "eval", "step": step, **eval_metrics})
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
        "world_size": d.world,
        "lora": lora.summary(policy.model, cfg) if cfg.lora_r else None,
        "last_train": last,
        "eval": eval_metrics,
        "elapsed_s": time.time() - t_begin,
        "final_dir": os.path.join(cfg.output_dir, checkpoint.FINAL),
    }
    checkpoint.save_final_model(cfg, d, policy, tokenizer, summary)
    accuracy = eval_metrics and eval_metrics.get("reward_accuracy")
    log({"type": "end", "step": step, "eval_accuracy": accuracy})
    distributed.barrier(d)
    return summary


if __name__ == "__main__":
    distributed.die_with_parent()
    result = main(config_from_args(sys.argv[1:]))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, default=str))
