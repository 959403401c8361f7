"""What one micro-batch computes, per algorithm: log-probs -> loss -> metrics.

``train.py`` owns the loop; this module owns the algorithm-specific middle of it:

- :class:`Split` bundles a tokenised snapshot with what its batches need (KTO's fixed blocks and
  mismatched KL sequences, the cached reference log-probs).
- :func:`reference_logps` looks reference log-probs up in the cache or runs the live reference.
- :func:`compute_loss` returns the micro-batch's mean loss and its metrics.
- :class:`Objective` binds them to one run (model, reference, ranks, device): this rank's share
  of a global batch, the loss of a micro-batch, a held-out evaluation.

Metric definitions (shared by training and evaluation):

- ``reward_accuracy``: pairs: fraction with chosen reward > rejected reward, using the loss's
  implicit rewards (DPO/IPO ``beta*(logp - logp_ref)``; SimPO/ORPO ``beta*avg logp``);
  KTO: fraction of rows whose reward ``beta*(logp - logp_ref)`` has the sign of its label.
- ``kl``: DPO/IPO: mean ``logp - logp_ref`` over the batch's completions (dataset completions,
  not policy samples: a drift indicator, not a true KL); KTO: the detached reference point z0;
  SimPO/ORPO: null (no reference).
- ``chosen_logps``/``rejected_logps``: mean summed log-probs (KTO: desirable/undesirable rows).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import torch

from training import losses
from training.core import data, distributed
from training.core.config import TrainConfig
from training.core.logps import INPUT_KEYS, batch_logps


@dataclass
class Split:
    snap: data.Snapshot
    blocks: list[list[int]] | None = None  # KTO: fixed micro-batches of row indices
    kl: list[data.Sequence] | None = None  # KTO: mismatched sequence of every row
    ref: torch.Tensor | None = None  # cached reference log-probs, data.reference_sequences order

    def eval_batches(self, batch_size: int) -> list[list[int]]:
        n = len(self.snap.rows)
        return self.blocks or [
            list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)
        ]


def load_splits(cfg: TrainConfig, tokenizer) -> tuple[data.Snapshot, Split, Split | None]:
    """The tokenised train snapshot, the train split and the held-out split (or None)."""
    snap = data.load_snapshot(cfg.train_path, tokenizer, cfg.max_length)
    if cfg.eval_path:
        train, held = snap, data.load_snapshot(cfg.eval_path, tokenizer, cfg.max_length)
    else:
        train, held = data.split_eval(snap, cfg.eval_fraction, cfg.seed)
    if cfg.algorithm == "kto":  # preference rows are unpaired, as TRL does
        train, held = data.unpair(train), held and data.unpair(held)
    elif snap.kind != "pairs":
        raise ValueError(
            f"--algorithm {cfg.algorithm} needs preference rows (prompt/chosen/rejected); "
            f"{cfg.train_path} holds KTO rows"
        )
    return snap, make_split(train, cfg), held and make_split(held, cfg)


def make_split(snap: data.Snapshot, cfg: TrainConfig) -> Split:
    if snap.kind == "pairs":
        return Split(snap)
    blocks = data.kto_blocks(len(snap.rows), cfg.batch_size, cfg.seed)
    return Split(snap, blocks, data.kl_sequences(snap.rows, blocks))


def prefixed_logps(model, batch: dict, prefix: str = "", chunk_size: int = 1024):
    """Log-probs of ``batch``'s sequences (either layout); KTO's KL rows: ``prefix="kl_"``.

    ``model`` is a causal LM, a ``logps.LogpsHead`` (maybe inside DDP / FSDP) or any callable
    taking the batch tensors as keywords (the LoRA reference: the policy, adapters off).
    """
    inputs = {
        k[len(prefix) :]: v
        for k, v in batch.items()
        if k.startswith(prefix) and k[len(prefix) :] in INPUT_KEYS
    }
    return batch_logps(model, inputs, chunk_size)


def reference_logps(split: Split, batch: dict, ref_model, chunk_size: int):
    """Reference log-probs of a batch: ``(2B,)`` for pairs, ``(main (B,), kl (B,))`` for KTO."""
    if split.ref is not None:  # cache order: [chosen | rejected] or [rows | KL rows]
        n, idx = len(split.snap.rows), batch["idx"].cpu()
        device = batch["input_ids"].device
        first, second = split.ref[idx].to(device), split.ref[n + idx].to(device)
        return torch.cat([first, second]) if split.snap.kind == "pairs" else (first, second)
    with torch.no_grad():
        main = prefixed_logps(ref_model, batch, "", chunk_size)[0]
        if split.snap.kind == "pairs":
            return main
        return main, prefixed_logps(ref_model, batch, "kl_", chunk_size)[0]


def compute_loss(
    cfg: TrainConfig, policy, batch: dict, ref_fn, kl_mean=None
) -> tuple[torch.Tensor, dict]:
    """Mean loss of one micro-batch and its metrics (python floats; ``n`` = rows, ``n_chosen`` /
    ``n_rejected`` = chosen / rejected (KTO: desirable / undesirable) rows).

    ``ref_fn(batch)`` returns the reference log-probs (see :func:`reference_logps`).
    ``kl_mean(diffs)``, when given, turns KTO's KL-row log-ratios ``(B,)`` into their mean ``(1,)``
    over every process (the batch is split across ranks; z0 is a whole-batch statistic).
    The forwards without gradient (reference, KL rows) run before the policy's forward with
    gradient, so a sharded (FSDP) model sees one forward per backward.
    """
    ref = ref_fn(batch) if cfg.needs_reference() else None
    kl_logps = None
    if cfg.algorithm == "kto":
        with torch.no_grad():  # TRL: no gradient through the KL reference point
            kl_logps, _ = prefixed_logps(policy, batch, "kl_", cfg.logps_chunk_size)
    logps, lengths = prefixed_logps(policy, batch, "", cfg.logps_chunk_size)
    if cfg.algorithm == "kto":
        loss, out, stats, chosen, rejected = _kto(cfg, batch, ref, logps, kl_logps, kl_mean)
    else:
        loss, out, stats, chosen, rejected = _pairs(cfg, ref, logps, lengths)
    stats.update(
        loss=loss.item(),
        reward_margin=_mean(out.chosen_rewards) - _mean(out.rejected_rewards),
        chosen_reward=_mean(out.chosen_rewards),
        rejected_reward=_mean(out.rejected_rewards),
        chosen_logps=_mean(chosen),
        rejected_logps=_mean(rejected),
        n=int(batch["idx"].numel()),
        n_chosen=chosen.numel(),
        n_rejected=rejected.numel(),
    )
    return loss, stats


def _kto(cfg: TrainConfig, batch: dict, ref_pair, logps, kl_logps, kl_mean):
    beta, label = cfg.resolved_beta(), batch["label"]
    ref, ref_kl = ref_pair
    if kl_mean is not None:  # z0 over all ranks' KL rows: pass their mean as a 1-element batch
        kl_logps, ref_kl = kl_mean(kl_logps - ref_kl), torch.zeros(1, device=logps.device)
    out = losses.kto_loss(
        logps,
        ref,
        kl_logps,
        ref_kl,
        label,
        beta=beta,
        desirable_weight=cfg.desirable_weight,
        undesirable_weight=cfg.undesirable_weight,
    )
    rewards = beta * (logps - ref).detach()
    stats = {"reward_accuracy": ((rewards > 0) == label).float().mean().item(), "kl": out.kl.item()}
    logps = logps.detach()
    return out.losses.mean(), out, stats, logps[label], logps[~label]


def _pairs(cfg: TrainConfig, ref, logps: torch.Tensor, lengths: torch.Tensor):
    beta = cfg.resolved_beta()
    chosen, rejected = logps.chunk(2)  # (B,) each: the batch holds chosen rows, then rejected rows
    chosen_len, rejected_len = lengths.chunk(2)
    stats = {"kl": float("nan")}  # no reference for SimPO/ORPO: logged as null
    if cfg.algorithm in ("dpo", "ipo"):
        out = losses.dpo_loss(
            chosen,
            rejected,
            *ref.chunk(2),
            beta=beta,
            loss_type=cfg.resolved_loss_type(),
            label_smoothing=cfg.label_smoothing,
            chosen_lengths=chosen_len,
            rejected_lengths=rejected_len,
        )
        loss = out.losses.mean()
        stats["kl"] = (logps.detach() - ref).mean().item()
    elif cfg.algorithm == "simpo":
        out = losses.simpo_loss(
            chosen,
            rejected,
            chosen_len,
            rejected_len,
            beta=beta,
            gamma=cfg.simpo_gamma,
            label_smoothing=cfg.label_smoothing,
        )
        loss = out.losses.mean()
    else:  # orpo: token-mean NLL of the chosen completions + the odds-ratio term
        out = losses.orpo_odds_ratio_loss(chosen, rejected, chosen_len, rejected_len, beta=beta)
        nll = -chosen.sum() / chosen_len.sum().clamp(min=1)
        loss = nll + out.losses.mean()
        stats["nll"] = nll.item()
    stats["reward_accuracy"] = (out.chosen_rewards > out.rejected_rewards).float().mean().item()
    return loss, out, stats, chosen.detach(), rejected.detach()


def _mean(t: torch.Tensor) -> float:
    return t.float().mean().item() if t.numel() else float("nan")


# Metrics about one class of rows are averaged over the rows of that class (KTO batches, and
# the shards of a batch split across ranks, hold the two classes in varying proportions).
CLASS_WEIGHT = {
    "chosen_logps": "n_chosen",
    "chosen_reward": "n_chosen",
    "rejected_logps": "n_rejected",
    "rejected_reward": "n_rejected",
}
COUNTS = ("n", "n_chosen", "n_rejected")


def without_weight(stats: dict) -> dict:
    """The stats of a stand-in micro-batch (distributed.shard): counted nowhere."""
    return stats | {k: 0 for k in COUNTS}


def aggregate(stats: list[dict], reduce_sum=None) -> dict:
    """Row-weighted means over micro-batches (``reduce_sum``: and over ranks, by summing the
    weighted totals), skipping values that are NaN in a micro-batch; None when no row had one.
    ``reward_margin`` = mean chosen reward - mean rejected reward; ``rows`` = rows counted."""
    keys = sorted(k for k in stats[0] if k not in COUNTS and k != "reward_margin")
    flat = []
    for k in keys:
        w = CLASS_WEIGHT.get(k, "n")
        pairs = [(s[k], s[w]) for s in stats if s[w] and not math.isnan(s[k])]
        flat += [sum(v * n for v, n in pairs), sum(n for _, n in pairs)]
    flat.append(sum(s["n"] for s in stats))
    if reduce_sum is not None:
        flat = reduce_sum(flat)
    out = {
        k: flat[2 * i] / flat[2 * i + 1] if flat[2 * i + 1] else None for i, k in enumerate(keys)
    }
    if "chosen_reward" in out:
        chosen, rejected = out["chosen_reward"], out["rejected_reward"]
        out["reward_margin"] = None if chosen is None or rejected is None else chosen - rejected
    return out | {"rows": int(flat[-1])}


@dataclass
class Objective:
    """One run's micro-batches: ``head`` is the policy's (wrapped) ``LogpsHead``, ``ref_model``
    the live reference (None when cached or not needed); see ``distributed.py`` for the ranks."""

    cfg: TrainConfig
    head: torch.nn.Module
    ref_model: object
    d: distributed.Dist
    device: torch.device
    pad_id: int
    shared_prefix: bool

    def autocast(self):
        """bf16 autocast on CUDA only; weights stay float32."""
        enabled = self.cfg.bf16 and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def batches(self, split: Split, idx_batches: list[list[int]]) -> Iterator[tuple]:
        """(batch of this rank's rows, whether they count, this rank's loss weight)."""
        for idx in idx_batches:
            mine, counts = distributed.shard(idx, self.d)
            b = data.make_batch(
                split.snap, mine, self.cfg.max_length, self.pad_id, split.kl, self.shared_prefix
            )
            weight = len(mine) * self.d.world / len(idx) if counts else 0.0  # DDP averages ranks
            yield {k: v.to(self.device) for k, v in b.items()}, counts, weight

    def loss(self, split: Split, batch: dict, counts: bool) -> tuple[torch.Tensor, dict]:
        """:func:`compute_loss` of this rank's micro-batch; a stand-in's stats count nowhere."""
        chunk = self.cfg.logps_chunk_size
        # KTO's z0 over all ranks' rows of the batch
        kl_mean = (
            partial(distributed.global_mean, counts=counts, d=self.d) if self.d.enabled else None
        )
        loss, stats = compute_loss(
            self.cfg,
            self.head,
            batch,
            lambda b: reference_logps(split, b, self.ref_model, chunk),
            kl_mean,
        )
        return loss, stats if counts else without_weight(stats)

    def reduce_sum(self, values: list[float]) -> list[float]:
        """Totals over all ranks."""
        return distributed.all_reduce_sum(values, self.d, self.device)

    def aggregate(self, stats: list[dict]) -> dict:
        return aggregate(stats, self.reduce_sum)

    def evaluate(self, split: Split) -> dict:
        """Metrics over all of ``split`` (every rank its share), without gradients."""
        self.head.eval()
        stats = []
        with torch.no_grad(), self.autocast():
            for batch, counts, _ in self.batches(split, split.eval_batches(self.cfg.batch_size)):
                stats.append(self.loss(split, batch, counts)[1])
        self.head.train()
        return self.aggregate(stats)
