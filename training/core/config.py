"""TrainConfig: every knob of a training run, filled from a JSON file and/or command-line flags.

``python -m training.core.train --config run.json --lr 1e-4`` reads ``run.json`` (keys = field
names) and then applies the flags, so flags win. Every flag has ``help=`` (from the field's
metadata); ``--help`` prints them all.

Learning rate: the default 5e-7 is what RLHFlow and OpenRLHF use for iterative DPO on 7-8B
models (TRL's DPOConfig default is 1e-6). The 1.4M-parameter demo model needs 1e-4 (DESIGN.md,
"The demo task": 1e-4 for 2 epochs at batch 32 gives 37% -> 76% held-out accuracy in one round;
3e-5 climbs more gently). Do not carry the demo's lr over to a real model.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields

ALGORITHMS = ("dpo", "ipo", "kto", "simpo", "orpo")
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "kto": 0.1, "simpo": 2.0, "orpo": 0.1}


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # Data
    train_path: str = _f("", "export snapshot: JSONL of TRL rows (preference or KTO)")
    eval_path: str = _f("", "optional held-out JSONL; if empty, --eval-fraction of the train rows")
    eval_fraction: float = _f(
        0.1, "fraction of train rows held out for evaluation when --eval-path is empty"
    )
    max_length: int = _f(
        1024, "max tokens of prompt+completion; longer rows are cut keeping the start"
    )
    # Models
    policy_path: str = _f("", "policy to train: local directory or hub id (AutoModelForCausalLM)")
    reference_path: str = _f(
        "", "frozen reference model; empty = the policy's initial weights (policy_path)"
    )
    precompute_ref: bool = _f(
        True, "score the reference once before training and cache it (else every step)"
    )
    ref_cache_dir: str = _f(
        "", "directory of the reference log-prob cache; empty = OUTPUT_DIR/ref_cache"
    )
    # Algorithm
    algorithm: str = _f(
        "dpo", "dpo | ipo | kto | simpo | orpo (ipo = dpo with loss_type ipo)", choices=ALGORITHMS
    )
    loss_type: str = _f("sigmoid", "DPO loss type (training/losses.py DPO_LOSS_TYPES); dpo only")
    beta: float | None = _f(
        None, "inverse temperature; default 0.1 (dpo/ipo/kto), 2.0 (simpo), ORPO lambda 0.1"
    )
    label_smoothing: float = _f(0.0, "label-noise rate for robust / exo_pair DPO and SimPO")
    simpo_gamma: float = _f(0.5, "SimPO target reward margin gamma")
    desirable_weight: float = _f(1.0, "KTO weight of desirable (thumbs-up) rows")
    undesirable_weight: float = _f(1.0, "KTO weight of undesirable (thumbs-down) rows")
    # Optimisation
    lr: float = _f(
        5e-7, "peak AdamW learning rate (5e-7 for 7B-class models; the tiny demo uses 1e-4)"
    )
    weight_decay: float = _f(0.0, "AdamW weight decay")
    epochs: int = _f(1, "passes over the training rows")
    batch_size: int = _f(8, "rows (pairs for preference data) per forward pass")
    grad_accum: int = _f(
        1, "micro-batches per optimizer step (effective batch = batch_size * grad_accum)"
    )
    warmup: int = _f(0, "linear warmup, in optimizer steps")
    schedule: str = _f(
        "linear",
        "lr after warmup: linear decay to 0, cosine, or constant",
        choices=("linear", "cosine", "constant"),
    )
    clip: float = _f(1.0, "max global grad norm (<= 0: no clipping, the norm is still logged)")
    seed: int = _f(0, "seed for the eval split, the data order and torch")
    gradient_checkpointing: bool = _f(
        False, "recompute decoder activations in the backward (less memory)"
    )
    bf16: bool = _f(True, "bfloat16 autocast on CUDA (weights stay float32); ignored on CPU")
    prefix_sharing: bool = _f(
        True,
        "pairs: one row per pair, prompt | chosen | rejected, so the prompt is computed once "
        "(exact; needs the sdpa or eager attention, else it is switched off)",
    )
    threads: int = _f(0, "torch.set_num_threads per process; 0 = torch's default")
    fsdp: bool = _f(
        False,
        "under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of "
        "replicating them (DDP)",
    )
    # LoRA (peft)
    lora_r: int = _f(
        0,
        "LoRA rank; > 0 trains adapters only, and the reference (when it is the policy) is "
        "the policy with adapters disabled",
    )
    lora_alpha: float = _f(16.0, "LoRA scaling alpha (the update is scaled by alpha / r)")
    lora_dropout: float = _f(
        0.0, "dropout on the LoRA input (0 keeps policy == reference at step 0)"
    )
    lora_target_modules: str = _f(
        "all-linear",
        "comma-separated module names to adapt (q_proj,v_proj,...) or all-linear (not lm_head)",
    )
    logps_chunk_size: int = _f(
        1024, "completion positions per LM-head call when computing log-probs"
    )
    device: str = _f("", "torch device; empty = cuda if available else cpu")
    # Output
    output_dir: str = _f(
        "", "run directory: metrics.jsonl, checkpoints/, final/ (the HF-format model)"
    )
    checkpoint_every: int = _f(
        0, "optimizer steps between checkpoints; 0 = at the end of each epoch"
    )
    eval_every: int = _f(0, "optimizer steps between held-out evaluations; 0 = only at the end")
    keep_checkpoints: bool = _f(False, "keep checkpoints/ after the final model is saved")
    resume: bool = _f(False, "continue from the last checkpoint in output_dir (same data order)")
    stop_after_steps: int = _f(
        0,
        "stop after this many optimizer steps in this invocation, as a "
        "preemption would (no final model); 0 = run to the end",
    )

    def resolved_beta(self) -> float:
        return DEFAULT_BETA[self.algorithm] if self.beta is None else self.beta

    def resolved_loss_type(self) -> str:
        return "ipo" if self.algorithm == "ipo" else self.loss_type

    def needs_reference(self) -> bool:
        return self.algorithm in ("dpo", "ipo", "kto")

    def to_dict(self) -> dict:
        return asdict(self)


def check_config(cfg: TrainConfig) -> None:
    """Raise ValueError with an actionable message for an unusable config."""
    from training.losses import DPO_LOSS_TYPES  # local: keep config import-light

    problems = []
    if not cfg.train_path:
        problems.append("--train-path is required")
    if not cfg.policy_path:
        problems.append("--policy-path is required")
    if not cfg.output_dir:
        problems.append("--output-dir is required")
    if cfg.algorithm not in ALGORITHMS:
        problems.append(f"--algorithm must be one of {ALGORITHMS}")
    if cfg.algorithm == "dpo" and cfg.loss_type not in DPO_LOSS_TYPES:
        problems.append(f"--loss-type must be one of {DPO_LOSS_TYPES}")
    if cfg.algorithm == "kto" and cfg.batch_size < 2:
        problems.append(
            "KTO needs --batch-size >= 2: the KL term pairs each prompt with another row's "
            "completion"
        )
    if cfg.batch_size < 1 or cfg.grad_accum < 1 or cfg.epochs < 1:
        problems.append("--batch-size, --grad-accum and --epochs must be >= 1")
    if cfg.lora_r < 0 or not 0.0 <= cfg.lora_dropout < 1.0:
        problems.append("--lora-r must be >= 0 and --lora-dropout in [0, 1)")
    if not 0.0 <= cfg.eval_fraction < 1.0:
        problems.append("--eval-fraction must be in [0, 1)")
    if problems:
        raise ValueError("invalid training config: " + "; ".join(problems))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.core.train",
        description="Preference training (DPO / IPO / KTO / SimPO / ORPO) on an export snapshot.",
    )
    parser.add_argument(
        "--config", default="", help="JSON file of TrainConfig fields; flags override it"
    )
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kw = {"help": f.metadata["help"], "dest": f.name, "default": argparse.SUPPRESS}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.type in ("bool", bool):
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = {"int": int, "float": float, "float | None": float}.get(f.type, str)
        parser.add_argument(flag, **kw)
    return parser


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """TrainConfig from ``--config FILE`` (optional) overridden by explicit flags."""
    args = vars(build_parser().parse_args(argv))
    values = {}
    path = args.pop("config", "")
    if path:
        with open(path) as fh:
            values = json.load(fh)
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}")
    values.update(args)
    return TrainConfig(**values)
