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
import shutil
import sys
import time

import torch

from training.core import checkpoint, data, distributed, lora, objective, reference
from training.core.config import TrainConfig, check_config, config_from_args
from training.core.logps import LogpsHead, supports_shared_prefix
from training.core.modelio import final_model, load_model, model_state, restore_state

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
    print(METRIC_PREFIX + line, flush=True)
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
    use_autocast = cfg.bf16 and device.type == "cuda"

    def autocast():  # bf16 autocast on CUDA only; weights stay float32
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast)

    t_begin = time.time()

    # ---- data: snapshot -> token ids -> train / eval splits (every rank tokenises all of it)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(cfg.policy_path)
    pad_id = pad_token_id(tokenizer)
    snap, train, evals = objective.load_splits(cfg, tokenizer)

    # ---- models: policy (trained; LoRA: adapters only) inside a LogpsHead, wrapped for
    # DDP / FSDP; reference (frozen: precomputed log-probs, a live model, or adapters off)
    policy = load_model(cfg.policy_path, device)
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_r:
        policy = lora.add_adapters(policy, cfg)
    policy.train()
    fsdp = cfg.fsdp and d.enabled
    head = distributed.wrap(LogpsHead(policy, cfg.logps_chunk_size), d, device, fsdp)
    shared_prefix = cfg.prefix_sharing and supports_shared_prefix(policy)
    ref_path = cfg.reference_path or cfg.policy_path
    adapters_off = cfg.lora_r > 0 and ref_path == cfg.policy_path  # no second model
    ref_model, ref_cache_hits = None, []
    if cfg.needs_reference() and cfg.precompute_ref:
        for split in filter(None, (train, evals)):
            split.ref, hit = reference.precompute(
                (lambda p: lora.AdaptersOff(head, policy))
                if adapters_off
                else (lambda p: load_model(p, device).eval()),
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
                dist=d,
            )
            ref_cache_hits.append(hit)
    elif cfg.needs_reference() and adapters_off:
        ref_model = lora.AdaptersOff(head, policy)
    elif cfg.needs_reference():
        ref_model = load_model(ref_path, device).eval().requires_grad_(False)

    def ref_fn_for(split: objective.Split):
        return lambda batch: objective.reference_logps(
            split, batch, ref_model, cfg.logps_chunk_size
        )

    def reduce_sum(values: list[float]) -> list[float]:  # totals over all ranks
        return distributed.all_reduce_sum(values, d, device)

    def kl_mean_for(counts: bool):  # KTO's z0 over all ranks' rows of the batch
        return (lambda diff: distributed.global_mean(diff, counts, d)) if d.enabled else None

    def batches_of(split: objective.Split, idx_batches: list[list[int]]):
        """(batch of this rank's rows, whether they count, this rank's loss weight)."""
        for idx in idx_batches:
            mine, counts = distributed.shard(idx, d)
            b = data.make_batch(split.snap, mine, cfg.max_length, pad_id, split.kl, shared_prefix)
            weight = len(mine) * d.world / len(idx) if counts else 0.0  # DDP averages ranks
            yield {k: v.to(device) for k, v in b.items()}, counts, weight

    def evaluate(split: objective.Split) -> dict:
        head.eval()
        stats = []
        with torch.no_grad(), autocast():
            for batch, counts, _ in batches_of(split, split.eval_batches(cfg.batch_size)):
                ref_fn = ref_fn_for(split)
                s = objective.compute_loss(cfg, head, batch, ref_fn, kl_mean_for(counts))[1]
                stats.append(s if counts else objective.without_weight(s))
        head.train()
        return objective.aggregate(stats, reduce_sum)

    # ---- optimizer and schedule
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    micro_per_epoch = len(data.epoch_batches(train.snap, cfg.batch_size, cfg.seed, 0, train.blocks))
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum)
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg.schedule, cfg.warmup, total_steps)
    )

    # ---- resume: model, optimizer, scheduler, RNG, position and the epoch's data order
    step, start_epoch, start_group, saved_order = 0, 0, 0, None
    state = checkpoint.load_latest_checkpoint(cfg.output_dir) if cfg.resume else None
    main_step = distributed.broadcast_object(state and state["step"], d)
    if (state and state["step"]) != main_step:
        raise RuntimeError(
            f"rank {d.rank} sees checkpoint step {state and state['step']}, rank 0 {main_step}: "
            "to resume, --output-dir must be on a filesystem every node shares"
        )
    if state is not None:
        checkpoint.check_resume_config(state["config"], cfg.to_dict())
        restore_state(cfg, state, policy, head, optimizer, fsdp)
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step, start_epoch, start_group = state["step"], state["epoch"], state["group"]
        saved_order = state["order"]
        if d.is_main:
            checkpoint.truncate_metrics(metrics_path, step)
    elif d.is_main and os.path.exists(metrics_path):
        os.remove(metrics_path)
    state = None  # the checkpoint's tensors are loaded; free them
    start_step = step
    log(
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
            "resumed": start_step > 0,
            "device": str(device),
            "world_size": d.world,
            "fsdp": fsdp,
            "lora": cfg.lora_r > 0,
            "prefix_sharing": shared_prefix,
        }
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
            n_micro = len(groups[g])
            for i, (batch, counts, weight) in enumerate(batches_of(train, groups[g])):
                # gradients are all-reduced once per step, in the last micro-batch's backward
                with distributed.no_grad_sync(head, sync=i + 1 == n_micro), autocast():
                    loss, s = objective.compute_loss(
                        cfg, head, batch, ref_fn_for(train), kl_mean_for(counts)
                    )
                    (loss * weight / n_micro).backward()
                stats.append(s if counts else objective.without_weight(s))
                tokens += data.batch_tokens(batch) * counts
            max_norm = cfg.clip if cfg.clip > 0 else float("inf")
            grad_norm = distributed.clip_grad_norm(params, max_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            metrics = objective.aggregate(stats, reduce_sum)
            tokens = reduce_sum([tokens])[0]
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
                log({"type": "eval", "step": step, **evaluate(evals)})
            end_of_epoch = g + 1 == len(groups)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or (
                not cfg.checkpoint_every and end_of_epoch
            ):
                model_sd, optim_sd = model_state(cfg, policy, head, optimizer, fsdp, d)
                if d.is_main:
                    checkpoint.save_checkpoint(
                        cfg.output_dir,
                        step,
                        {
                            "model": model_sd,
                            "optimizer": optim_sd,
                            "scheduler": scheduler.state_dict(),
                            "rng": checkpoint.rng_state(),
                            "step": step,
                            "epoch": epoch + end_of_epoch,
                            "group": 0 if end_of_epoch else g + 1,
                            "order": None if end_of_epoch else order,
                            "config": cfg.to_dict(),
                        },
                    )
                distributed.barrier(d)
            if (
                cfg.stop_after_steps
                and step - start_step >= cfg.stop_after_steps
                and step < total_steps
            ):
                return {"status": "stopped", "step": step, "total_steps": total_steps}

    # ---- held-out evaluation and the final model
    eval_metrics = evaluate(evals) if evals else None
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
        "lora": lora.summary(policy, cfg) if cfg.lora_r else None,
        "last_train": last,
        "eval": eval_metrics,
        "elapsed_s": time.time() - t_begin,
        "final_dir": os.path.join(cfg.output_dir, checkpoint.FINAL),
    }
    model = final_model(cfg, policy, head, fsdp, d)
    if d.is_main:
        import transformers

        checkpoint.save_final(
            cfg.output_dir,
            model,
            tokenizer,
            {
                "config": cfg.to_dict(),
                "summary": summary,
                "lora": summary["lora"],
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            },
        )
        if not cfg.keep_checkpoints:
            shutil.rmtree(os.path.join(cfg.output_dir, checkpoint.CHECKPOINTS), ignore_errors=True)
        log(
            {
                "type": "end",
                "step": step,
                "eval_accuracy": eval_metrics and eval_metrics.get("reward_accuracy"),
            }
        )
    distributed.barrier(d)
    return summary


if __name__ == "__main__":
    result = main(config_from_args(sys.argv[1:]))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, default=str))
