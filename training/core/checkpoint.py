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

The trainer calls three functions here: :func:`resume` (restore the newest checkpoint, or start
clean), :func:`save_state` (every rank calls it; rank 0 writes) and :func:`save_final_model`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass

import torch

from training.core import distributed
from training.core.config import TrainConfig
from training.core.modelio import Policy, final_model, model_state, restore_state

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


@dataclass
class Position:
    """Where a run (re)starts: optimizer steps done, epoch, step group within the epoch, and the
    epoch's data order when it stopped mid-epoch (None: compute it from the seed)."""

    step: int = 0
    epoch: int = 0
    group: int = 0
    order: list | None = None


def resume(
    cfg: TrainConfig, d: distributed.Dist, policy: Policy, optimizer, scheduler, metrics_path: str
) -> Position:
    """With ``cfg.resume``: load the newest checkpoint into model, optimizer, scheduler and RNG and
    drop the metrics logged after it; otherwise (or with none) start clean at step 0."""
    state = load_latest_checkpoint(cfg.output_dir) if cfg.resume else None
    main_step = distributed.broadcast_object(state and state["step"], d)
    if (state and state["step"]) != main_step:
        raise RuntimeError(
            f"rank {d.rank} sees checkpoint step {state and state['step']}, rank 0 {main_step}: "
            "to resume, --output-dir must be on a filesystem every node shares"
        )
    if state is None:
        if d.is_main and os.path.exists(metrics_path):
            os.remove(metrics_path)
        return Position()
    check_resume_config(state["config"], cfg.to_dict())
    restore_state(cfg, policy, state, optimizer)
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if d.is_main:
        truncate_metrics(metrics_path, state["step"])
    return Position(state["step"], state["epoch"], state["group"], state["order"])


def due(cfg: TrainConfig, step: int, end_of_epoch: bool) -> bool:
    """Checkpoint after this optimizer step? Every ``checkpoint_every`` steps, else (0) at the
    end of each epoch."""
    return step % cfg.checkpoint_every == 0 if cfg.checkpoint_every else end_of_epoch


def save_state(
    cfg: TrainConfig,
    d: distributed.Dist,
    policy: Policy,
    optimizer,
    scheduler,
    *,
    resume_at: Position,
) -> None:
    """Checkpoint after ``resume_at.step`` optimizer steps; a resumed run continues at
    ``resume_at``. Every rank calls it (FSDP gathers the state to rank 0, which writes); all wait
    until it is on disk."""
    model_sd, optim_sd = model_state(cfg, policy, optimizer, d)
    if d.is_main:
        state = {
            "model": model_sd,
            "optimizer": optim_sd,
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "step": resume_at.step,
            "epoch": resume_at.epoch,
            "group": resume_at.group,
            "order": resume_at.order,
            "config": cfg.to_dict(),
        }
        save_checkpoint(cfg.output_dir, resume_at.step, state)
    distributed.barrier(d)


def save_final_model(
    cfg: TrainConfig, d: distributed.Dist, policy: Policy, tokenizer, summary: dict
) -> None:
    """Write ``final/`` (rank 0; FSDP: every rank must call) and drop the checkpoints unless
    ``keep_checkpoints``."""
    model = final_model(cfg, policy, d)
    if not d.is_main:
        return
    import transformers

    info = {
        "config": cfg.to_dict(),
        "summary": summary,
        "lora": summary["lora"],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    save_final(cfg.output_dir, model, tokenizer, info)
    if not cfg.keep_checkpoints:
        shutil.rmtree(os.path.join(cfg.output_dir, CHECKPOINTS), ignore_errors=True)
