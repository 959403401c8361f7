"""Models in and out of the trainer: the policy, checkpoint state, restore, the final model.

Kept apart from ``train.py`` so the loop stays readable. A :class:`Policy` holds the model in
the three ways it can be trained: plain (one process or DDP), sharded (FSDP2: state dicts are
gathered to rank 0 in full, every rank must call), and LoRA (checkpoints hold the adapters only,
the final model is merged).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.core import distributed, lora
from training.core.config import TrainConfig
from training.core.logps import LogpsHead, supports_shared_prefix


@dataclass
class Policy:
    """The model being trained: ``model`` (LoRA: the ``PeftModel``) and ``head``, the
    ``LogpsHead`` around it, wrapped for DDP or FSDP; forwards and backwards go through ``head``."""

    model: torch.nn.Module
    head: torch.nn.Module
    fsdp: bool
    shared_prefix: bool  # pairs as one prompt | chosen | rejected row (logps.py)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.head.parameters() if p.requires_grad]


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


def load_policy(cfg: TrainConfig, d: distributed.Dist, device: torch.device) -> Policy:
    """The policy to train (LoRA: adapters only), in train mode, wrapped for DDP / FSDP."""
    model = load_model(cfg.policy_path, device)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_r:
        model = lora.add_adapters(model, cfg)
    model.train()
    fsdp = cfg.fsdp and d.enabled
    head = distributed.wrap(LogpsHead(model, cfg.logps_chunk_size), d, device, fsdp)
    return Policy(model, head, fsdp, cfg.prefix_sharing and supports_shared_prefix(model))


def saved_dtype(path: str) -> torch.dtype:
    """The dtype the checkpoint at ``path`` was stored in; the final model is saved in it too."""
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(path), "dtype", None)
    dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def final_model(cfg: TrainConfig, policy: Policy, d: distributed.Dist):
    """The model to save as ``final/`` (on rank 0; None elsewhere): FSDP's full state dict
    loaded into a fresh CPU copy, LoRA adapters merged, in the dtype the input was stored in."""
    model = policy.model
    if policy.fsdp:
        state, _ = distributed.full_state_dict(policy.head)  # a collective: every rank calls it
        if not d.is_main:
            return None
        model = load_model(cfg.policy_path, torch.device("cpu"))
        if cfg.lora_r:
            model = lora.add_adapters(model, cfg)
        model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    if not d.is_main:
        return None
    if cfg.lora_r:
        model = model.merge_and_unload()
    return model.to(saved_dtype(cfg.policy_path))  # trained in float32, saved as given


def model_state(cfg: TrainConfig, policy: Policy, optimizer, d: distributed.Dist):
    """(model, optimizer) state for a checkpoint on rank 0 (None elsewhere); LoRA: adapters."""
    if policy.fsdp:  # full (unsharded) state dicts, gathered to rank 0: a collective
        model_sd, optim_sd = distributed.full_state_dict(policy.head, optimizer)
        owner = policy.head
    elif d.is_main:
        model_sd, optim_sd, owner = policy.model.state_dict(), optimizer.state_dict(), policy.model
    if not d.is_main:
        return None, None
    return (lora.trainable_state(owner, model_sd) if cfg.lora_r else model_sd), optim_sd


def restore_state(cfg: TrainConfig, policy: Policy, state: dict, optimizer) -> None:
    if policy.fsdp:
        distributed.load_full_state_dict(policy.head, optimizer, state["model"], state["optimizer"])
        return
    if cfg.lora_r:
        lora.load_trainable_state(policy.model, state["model"])
    else:
        policy.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
