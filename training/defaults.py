"""Defaults that work: the learning rate chosen from the policy's size.

The rule (docs/training.md, "Default learning rate"): log-linear in the parameter
count between two anchors, clamped outside them:

    N <= 10M       -> 1e-4   (the tiny demo models train well here)
    N >= 7B        -> 5e-7   (the DPO paper's and Zephyr's value for 7B models)
    in between     -> log10(lr) interpolated linearly in log10(N)

Pure functions: no Django, no torch. The parameter count comes from the safetensors
headers of a local model folder (no weights are read); a hub id or a folder without
safetensors gives ``None`` and the trainer's own default (5e-7) stays.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

SMALL_PARAMS, SMALL_LR = 10_000_000, 1e-4
LARGE_PARAMS, LARGE_LR = 7_000_000_000, 5e-7


def default_learning_rate(n_params: int) -> float:
    """The rule above, rounded to two significant digits."""
    if n_params <= SMALL_PARAMS:
        return SMALL_LR
    if n_params >= LARGE_PARAMS:
        return LARGE_LR
    share = (math.log10(n_params) - math.log10(SMALL_PARAMS)) / (
        math.log10(LARGE_PARAMS) - math.log10(SMALL_PARAMS)
    )
    log_lr = math.log10(SMALL_LR) + share * (math.log10(LARGE_LR) - math.log10(SMALL_LR))
    return float(f"{10**log_lr:.2g}")


def parameter_count(folder: str | Path) -> int | None:
    """Parameters in a local model folder, summed over its safetensors headers."""
    path = Path(folder)
    files = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if not files:
        return None
    total = 0
    for file in files:
        with file.open("rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info["shape"])
    return total


def hyperparameters_with_defaults(hyperparameters: dict, *, policy_folder: str) -> dict:
    """``hyperparameters`` with ``lr`` filled in from the policy's size when absent."""
    if "lr" in hyperparameters:
        return dict(hyperparameters)
    n_params = parameter_count(policy_folder)
    if n_params is None:
        return dict(hyperparameters)
    return {**hyperparameters, "lr": default_learning_rate(n_params)}
