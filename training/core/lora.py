"""LoRA through ``peft``: adapters are trained, the base weights stay frozen.

- Reference for free: when the reference is the policy's starting point (the default), its
  log-probs are the policy's with the adapters switched off (``disable_adapter()``), so no second
  model is loaded, whether the reference is precomputed or scored every step (every stack does
  this; training anchors, section 3.7 item 8).
- The final model is ``merge_and_unload()``-ed into a plain Hugging Face model, so the registry,
  vLLM and ``AutoModelForCausalLM`` load it like any other; ``prefloop_training.json`` records the
  LoRA settings.
- Checkpoints hold the trainable (adapter) tensors only; the frozen base is re-read from
  ``--policy-path`` on resume.
- ``lm_head`` is never adapted (``all-linear`` excludes it): the log-prob code reads its weight.
"""

from __future__ import annotations

import torch

from training.core.config import TrainConfig


def lora_config(cfg: TrainConfig):
    from peft import LoraConfig

    targets = cfg.lora_target_modules.strip()
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
        if "lm_head" in targets:
            raise ValueError("--lora-target-modules: lm_head cannot be adapted")
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


def add_adapters(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """The model wrapped as a ``PeftModel`` with fresh adapters (B = 0: policy == base at start)."""
    from peft import get_peft_model

    return get_peft_model(model, lora_config(cfg))


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "merge_and_unload")


class AdaptersOff:
    """The reference when it is the LoRA policy's starting point: ``head(**batch)`` under
    ``no_grad`` with the adapters of ``peft_model`` switched off. ``head`` is the policy's
    ``LogpsHead`` (possibly inside DDP / FSDP, so sharded parameters get gathered)."""

    def __init__(self, head, peft_model: torch.nn.Module) -> None:
        self.head, self.peft_model = head, peft_model

    def __call__(self, **inputs):
        with torch.no_grad(), self.peft_model.disable_adapter():
            return self.head(**inputs)


def trainable_state(model: torch.nn.Module, state: dict | None = None) -> dict:
    """The entries of ``state`` (default: ``model.state_dict()``) that belong to trainable
    parameters: what a LoRA checkpoint needs."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict() if state is None else state
    return {k: v for k, v in state.items() if k in names}


def load_trainable_state(model: torch.nn.Module, state: dict) -> None:
    missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(state)
    if missing:
        raise ValueError(f"checkpoint lacks adapter tensors {sorted(missing)[:3]} ...")
    model.load_state_dict(state, strict=False)


def summary(model: torch.nn.Module, cfg: TrainConfig) -> dict:
    """The LoRA settings and sizes recorded with the final model."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {
        "r": cfg.lora_r,
        "alpha": cfg.lora_alpha,
        "dropout": cfg.lora_dropout,
        "target_modules": cfg.lora_target_modules,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "merged": True,
    }
