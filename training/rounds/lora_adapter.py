"""A LoRA adapter that turns a served base model into a trained version (pure torch, no Django).

LoRA runs save merged weights (``training/core/lora.py``). A server that holds the base
weights needs the *difference* as an adapter: for every linear layer that changed,
``tuned - base`` has rank at most the sum of the LoRA ranks trained since that base (one
round: ``r``; a chain of rounds stacks). A truncated SVD of the difference gives that
adapter exactly (up to float rounding): ``B = U sqrt(S)``, ``A = sqrt(S) V^T``, scaling 1.

Anything else that changed (embeddings, norms, the LM head, a difference of higher rank
than asked for) means the version is not a low-rank update of the base, and no adapter is
made: the caller then serves the version's own weights instead.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
RELATIVE_ERROR = 1e-3  # of the largest weight change: more left over = not a low-rank update


class NotLowRankError(ValueError):
    """The tuned weights are not the base plus a low-rank change of the asked rank."""


@dataclass(frozen=True)
class Adapter:
    path: Path
    rank: int
    modules: tuple[str, ...]
    max_error: float  # largest |tuned - (base + B A)| over all adapted weights


def load_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        state.update(load_file(str(file)))
    if not state:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    return state


def low_rank_adapter_write(
    *, base_dir: str | Path, tuned_dir: str | Path, out_dir: str | Path, rank: int
) -> Adapter:
    """Write the PEFT adapter (``adapter_config.json`` + weights) taking ``base_dir`` to
    ``tuned_dir`` into ``out_dir`` (atomically); raises NotLowRankError when there is none."""
    base, tuned = load_weights(base_dir), load_weights(tuned_dir)
    if base.keys() != tuned.keys():
        raise NotLowRankError("the two models do not have the same weights")
    tensors, modules, worst, scale = {}, set(), 0.0, 0.0
    for key in sorted(tuned):
        delta = tuned[key].double() - base[key].double()
        if not torch.any(delta):
            continue
        if delta.dim() != 2 or not key.endswith(".weight") or _not_adaptable(key):
            raise NotLowRankError(f"{key} changed and is not a linear layer an adapter can hold")
        a, b, error = _factor(delta, rank)
        scale = max(scale, float(delta.abs().max()))
        worst = max(worst, error)
        prefix = "base_model.model." + key[: -len(".weight")]
        tensors[f"{prefix}.lora_A.weight"] = a.to(tuned[key].dtype).contiguous()
        tensors[f"{prefix}.lora_B.weight"] = b.to(tuned[key].dtype).contiguous()
        modules.add(key.split(".")[-2])
    if not tensors:
        raise NotLowRankError("the tuned model's weights equal the base model's")
    if worst > RELATIVE_ERROR * scale:
        raise NotLowRankError(
            f"the change is not of rank {rank} (a rank-{rank} adapter leaves an error of "
            f"{worst:.3g} against changes up to {scale:.3g})"
        )
    _write(out_dir, tensors, rank=rank, modules=sorted(modules), base=str(base_dir))
    return Adapter(Path(out_dir), rank, tuple(sorted(modules)), worst)


def _not_adaptable(key: str) -> bool:
    return any(part in key for part in ("embed", "lm_head", "norm"))


def _factor(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    rank = min(rank, s.numel())
    root = s[:rank].sqrt()
    b = u[:, :rank] * root  # (out, r)
    a = root[:, None] * vh[:rank]  # (r, in)
    return a, b, float((delta - b @ a).abs().max())


def _write(out_dir: str | Path, tensors: dict, *, rank: int, modules: list[str], base: str):
    out = Path(out_dir)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / ADAPTER_WEIGHTS))
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": rank,
        "lora_dropout": 0.0, "target_modules": modules, "bias": "none",
        "fan_in_fan_out": False, "use_rslora": False, "modules_to_save": None,
        "base_model_name_or_path": base,
    }
    (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
