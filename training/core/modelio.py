"""Models in and out of the trainer: load, checkpoint state, restore, the final model.

Kept apart from ``train.py`` so the loop stays readable; every function knows the three ways a
policy can be held: plain (one process or DDP), sharded (FSDP2: state dicts are gathered to
rank 0 in full, every rank must call), and LoRA (checkpoints hold the adapters only, the final
model is merged).
"""

from __future__ import annotations

import torch

from training.core import distributed, lora
from training.core.config import TrainConfig


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


def final_model(cfg: TrainConfig, policy, head, fsdp: bool, d: distributed.Dist):
    """The model to save as ``final/`` (on rank 0; None elsewhere): FSDP's full state dict
    loaded into a fresh CPU copy, LoRA adapters merged, in the dtype the input was stored in."""
    if fsdp:
        state, _ = distributed.full_state_dict(head)  # a collective: every rank calls it
        if not d.is_main:
            return None
        policy = load_model(cfg.policy_path, torch.device("cpu"))
        if cfg.lora_r:
            policy = lora.add_adapters(policy, cfg)
        policy.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    if not d.is_main:
        return None
    if cfg.lora_r:
        policy = policy.merge_and_unload()
    return policy.to(saved_dtype(cfg.policy_path))  # trained in float32, saved as given


def model_state(cfg: TrainConfig, policy, head, optimizer, fsdp: bool, d: distributed.Dist):
    """(model, optimizer) state for a checkpoint on rank 0 (None elsewhere); LoRA: adapters."""
    if fsdp:  # full (unsharded) state dicts, gathered to rank 0: a collective
        model_sd, optim_sd = distributed.full_state_dict(head, optimizer)
        owner = head
    elif d.is_main:
        model_sd, optim_sd, owner = policy.state_dict(), optimizer.state_dict(), policy
    if not d.is_main:
        return None, None
    return (lora.trainable_state(owner, model_sd) if cfg.lora_r else model_sd), optim_sd


def restore_state(cfg: TrainConfig, state: dict, policy, head, optimizer, fsdp: bool) -> None:
    if fsdp:
        distributed.load_full_state_dict(head, optimizer, state["model"], state["optimizer"])
        return
    if cfg.lora_r:
        lora.load_trainable_state(policy, state["model"])
    else:
        policy.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
