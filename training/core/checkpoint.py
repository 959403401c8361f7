"""Atomic checkpoints and the final model.

Layout of a run directory::

    output_dir/
      metrics.jsonl                  one JSON object per step / eval (also printed to stdout)
      checkpoints/latest             name of the newest complete checkpoint (written atomically)
      checkpoints/step-00000012/     state.pt: model, optimizer, scheduler, step, RNG, data order
      final/                         Hugging Face model + tokenizer + prefloop_training.json

Everything is written under a temporary name in the same directory and moved into place with
``os.replace`` (atomic on POSIX), so a crash leaves either the previous state or the new one,
never a half-written directory under a real name. ``final/`` appears only when it is complete,
and ``final/prefloop_training.json`` is written before the move: its presence marks a finished
run. A partial run has ``checkpoints/`` and no ``final/``.
"""

from __future__ import annotations

import json
import os
import random
import shutil

import torch

CHECKPOINTS = "checkpoints"
FINAL = "final"
TRAINING_JSON = "prefloop_training.json"


def atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(output_dir: str, step: int, state: dict, keep_last: int = 1) -> str:
    """Write ``state`` (a dict of tensors / state dicts / plain values) as checkpoint ``step``."""
    root = os.path.join(output_dir, CHECKPOINTS)
    os.makedirs(root, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    torch.save(state, os.path.join(tmp, "state.pt"))
    final = os.path.join(root, name)
    shutil.rmtree(final, ignore_errors=True)  # only after a crash between the moves below
    os.replace(tmp, final)
    atomic_write_text(os.path.join(root, "latest"), name)
    old = sorted(d for d in os.listdir(root) if d.startswith("step-") and d != name)
    for d in old[: max(0, len(old) - (keep_last - 1))]:
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)
    return final


def load_latest_checkpoint(output_dir: str) -> dict | None:
    """The newest complete checkpoint's state dict, or None when there is none."""
    latest = os.path.join(output_dir, CHECKPOINTS, "latest")
    if not os.path.exists(latest):
        return None
    with open(latest) as fh:
        name = fh.read().strip()
    return torch.load(
        os.path.join(output_dir, CHECKPOINTS, name, "state.pt"),
        map_location="cpu",
        weights_only=False,
    )


# Settings a resumed run may change without changing what it computes.
RESUME_MAY_CHANGE = {
    "resume",
    "stop_after_steps",
    "keep_checkpoints",
    "eval_every",
    "device",
    "ref_cache_dir",
    "output_dir",
    "checkpoint_every",
    "threads",
    "prefix_sharing",  # the same log-probs, computed another way
}


def check_resume_config(saved: dict, current: dict) -> None:
    """Refuse to resume with settings that would change the data order or the updates."""
    changed = sorted(
        k for k, v in saved.items() if k not in RESUME_MAY_CHANGE and current.get(k) != v
    )
    if changed:
        raise ValueError(
            f"cannot resume: {changed} differ from the checkpoint's config "
            f"({ {k: saved[k] for k in changed} }); use a new --output-dir"
        )


def save_final(output_dir: str, model, tokenizer, info: dict) -> str:
    """Save the model in Hugging Face format to ``output_dir/final`` atomically."""
    final = os.path.join(output_dir, FINAL)
    tmp = os.path.join(output_dir, f".tmp-final-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, TRAINING_JSON), "w") as fh:
        json.dump(info, fh, indent=2, default=str)
    if os.path.exists(final):  # os.replace cannot replace a non-empty directory
        old = os.path.join(output_dir, f".old-final-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def read_final(output_dir: str) -> dict | None:
    """``prefloop_training.json`` of a finished run, or None."""
    path = os.path.join(output_dir, FINAL, TRAINING_JSON)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def truncate_metrics(path: str, step: int) -> None:
    """Drop metric lines logged after ``step``: a resumed run redoes those steps and logs them."""
    if not os.path.exists(path):
        return
    with open(path) as fh:
        lines = [ln for ln in fh if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(lines))
