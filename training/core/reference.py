"""Reference log-probs: computed once per (snapshot, reference model), cached on disk, reused.

Within a training run (and within an iterative round) the reference model is frozen, so its
log-probs of the training sequences never change. Scoring them once up front removes one
forward per step (about a fifth of a step's FLOPs) and the reference model need not stay in memory
(TRL ``precompute_ref_log_probs``, open-instruct ``dpo_tune_cache.py``).

The cache key is the snapshot's sha256, the reference model path (absolute) plus a fingerprint of
its files (name, size, mtime: a path re-used for new weights gets a new key), and a hash of
the exact token ids scored (which covers the tokenizer, the chat template, ``max_length`` and
KTO's KL pairing). The file is written to a temporary name and moved into place with
``os.replace``, so a crash never leaves a half-written cache that looks valid.

:func:`setup` is what the trainer calls: it picks the reference for a run (cached log-probs, a
live frozen model, or the LoRA policy with its adapters off).
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array

import torch

from training.core import distributed, lora, modelio
from training.core.config import TrainConfig
from training.core.data import Sequence, collate, reference_sequences
from training.core.logps import batch_logps


def model_fingerprint(path: str) -> dict:
    """Identity of a local model directory (absolute path + weight files' names, sizes, mtimes)."""
    path = os.path.abspath(path) if os.path.exists(path) else path
    files = []
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.endswith((".safetensors", ".bin", ".pt", ".json")):
                st = os.stat(os.path.join(path, name))
                files.append([name, st.st_size, int(st.st_mtime_ns)])
    return {"path": path, "files": files}


def cache_key(
    snapshot_sha256: str, reference_path: str, seqs: list[Sequence], max_length: int
) -> str:
    tokens = hashlib.sha256()
    for s in seqs:
        tokens.update(array("q", [len(s.prompt_ids), len(s.completion_ids)]).tobytes())
        tokens.update(array("q", s.prompt_ids + s.completion_ids).tobytes())
    blob = json.dumps(
        {
            "snapshot": snapshot_sha256,
            "reference": model_fingerprint(reference_path),
            "tokens": tokens.hexdigest(),
            "max_length": max_length,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@torch.no_grad()
def score(
    model,
    seqs: list[Sequence],
    *,
    max_length: int,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    chunk_size: int = 1024,
    autocast: bool = False,
) -> torch.Tensor:
    """Summed completion log-probs of ``seqs`` under ``model``, ``(len(seqs),)`` float32 on CPU.

    ``model`` is a causal LM or anything ``logps.batch_logps`` accepts (a ``LogpsHead``, the
    LoRA policy with adapters off)."""
    # Sorting by length keeps padding (and wasted compute) low; results go back to input order.
    order = sorted(
        range(len(seqs)), key=lambda i: len(seqs[i].prompt_ids) + len(seqs[i].completion_ids)
    )
    out = torch.zeros(len(seqs), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {
            k: v.to(device) for k, v in collate([seqs[i] for i in idx], max_length, pad_id).items()
        }
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logps, _ = batch_logps(model, batch, chunk_size)
        out[torch.tensor(idx)] = logps.float().cpu()
    return out


def _read_cache(path: str, key: str, n: int) -> torch.Tensor | None:
    if not os.path.exists(path):
        return None
    cached = torch.load(path, map_location="cpu", weights_only=True)
    return cached["logps"] if cached["key"] == key and cached["logps"].numel() == n else None


def precompute(
    load_model,
    reference_path: str,
    snapshot_sha256: str,
    seqs: list[Sequence],
    *,
    cache_dir: str,
    max_length: int,
    pad_id: int,
    batch_size: int,
    device: torch.device,
    chunk_size: int = 1024,
    autocast: bool = False,
    dist: distributed.Dist | None = None,
) -> tuple[torch.Tensor, bool]:
    """Cached reference log-probs of ``seqs``; returns ``(logps (len(seqs),), cache_hit)``.

    ``load_model(path)`` is only called on a cache miss, and the model is dropped afterwards.
    With several processes (``dist``) rank 0 reads the cache and shares it; on a miss every rank
    scores an equal share of the sequences (the same number of forwards on every rank, as a
    sharded model needs), the shares are gathered, and rank 0 writes the file while the others
    wait.
    """
    d = dist or distributed.Dist()
    key = cache_key(snapshot_sha256, reference_path, seqs, max_length)
    path = os.path.join(cache_dir, f"ref-logps-{key[:24]}.pt")
    cached = _read_cache(path, key, len(seqs)) if d.is_main else None
    cached = distributed.broadcast_object(cached, d)
    if cached is not None:
        return cached, True
    model = load_model(reference_path)
    per_rank = -(-len(seqs) // d.world)
    mine = list(range(d.rank, len(seqs), d.world))
    mine += [0] * (per_rank - len(mine))  # stand-ins, so every rank runs as many batches
    part = score(
        model,
        [seqs[i] for i in mine],
        max_length=max_length,
        pad_id=pad_id,
        batch_size=batch_size,
        device=device,
        chunk_size=chunk_size,
        autocast=autocast,
    )
    del model
    logps = _gather(part, mine, len(seqs), d, device)
    if d.is_main:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        torch.save(
            {"key": key, "logps": logps, "reference": reference_path, "snapshot": snapshot_sha256},
            tmp,
        )
        os.replace(tmp, path)
    distributed.barrier(d)
    return logps, False


def _gather(
    part: torch.Tensor, mine: list[int], n: int, d: distributed.Dist, device: torch.device
) -> torch.Tensor:
    """Every rank's scores put back in sequence order (rank r scored r, r+N, ...)."""
    if not d.enabled:
        return part[: len(mine)]
    import torch.distributed as tdist

    parts = [torch.empty_like(part, device=device) for _ in range(d.world)]
    tdist.all_gather(parts, part.to(device))
    out = torch.zeros(n, dtype=torch.float32)
    for rank, p in enumerate(parts):
        idx = list(range(rank, n, d.world))
        out[torch.tensor(idx, dtype=torch.long)] = p[: len(idx)].cpu()
    return out


def setup(
    cfg: TrainConfig,
    policy: modelio.Policy,
    splits: list,
    *,
    pad_id: int,
    device: torch.device,
    d: distributed.Dist,
) -> tuple[object, list[bool]]:
    """The run's reference: ``(live model or None, cache hits)``.

    With ``precompute_ref`` each split's ``ref`` is filled with cached log-probs and no model
    stays in memory; otherwise the reference is a frozen model, or, for LoRA when the reference
    is the starting policy, the policy itself with its adapters off (no second model).
    ``splits`` are ``objective.Split`` s (None entries are skipped)."""
    if not cfg.needs_reference():
        return None, []
    ref_path = cfg.reference_path or cfg.policy_path
    adapters_off = cfg.lora_r > 0 and ref_path == cfg.policy_path
    if not cfg.precompute_ref:
        if adapters_off:
            return lora.AdaptersOff(policy.head, policy.model), []
        return modelio.load_model(ref_path, device).eval().requires_grad_(False), []

    def load(path: str):
        if adapters_off:
            return lora.AdaptersOff(policy.head, policy.model)
        return modelio.load_model(path, device).eval()

    hits = []
    for split in filter(None, splits):
        split.ref, hit = precompute(
            load,
            ref_path,
            split.snap.sha256,
            reference_sequences(split.snap, split.kl),
            cache_dir=cfg.ref_cache_dir or os.path.join(cfg.output_dir, "ref_cache"),
            max_length=cfg.max_length,
            pad_id=pad_id,
            batch_size=cfg.batch_size,
            device=device,
            chunk_size=cfg.logps_chunk_size,
            autocast=cfg.bf16 and device.type == "cuda",
            dist=d,
        )
        hits.append(hit)
    return None, hits
