"""The training bench's equivalence gate: Prefloop's DPO objective and TRL's on the same batches.

Before any timing, ``bench/training.py`` checks that both trainers compute the same thing, with a
reference model that is *not* the policy (a second random initialisation), on variable-length
rows (so padding and prefix sharing are exercised):

- per-sequence log-probs of the policy and of the reference, chosen and rejected:
  Prefloop's ``objective.prefixed_logps`` (prefix-shared layout) against TRL's
  ``DPOTrainer.compute_ref_log_probs`` (TRL's own padded layout and fused LM head);
- the batch's DPO loss: Prefloop's ``objective.compute_loss`` (live reference) against TRL's
  ``DPOTrainer.compute_loss``.

The largest absolute difference must stay within ``TOLERANCE``; the bench exits 1 otherwise.
KTO is not gated here (TRL's mismatched KL rows are drawn differently from ours).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import dataclass

import torch

TOLERANCE = 1e-3


@dataclass(frozen=True)
class GateResult:
    batches: int
    sequences: int
    max_logp_diff: float  # policy and reference log-probs, per sequence
    max_loss_diff: float  # batch DPO loss

    @property
    def passed(self) -> bool:
        return max(self.max_logp_diff, self.max_loss_diff) <= TOLERANCE

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return (
            f"equivalence gate (dpo, reference != policy, {self.batches} batches, "
            f"{self.sequences} sequences): max |logp diff| {self.max_logp_diff:.2e}, "
            f"max |loss diff| {self.max_loss_diff:.2e}, tolerance {TOLERANCE:.0e}: {verdict}"
        )


def _prefloop_side(policy_dir: str, ref_dir: str, rows: list[dict], batches: list[list[int]]):
    """Per batch: (policy logps (2B,), reference logps (2B,), loss) from training/core."""
    from transformers import AutoTokenizer

    from training.core import data, objective
    from training.core.config import TrainConfig
    from training.core.modelio import load_model

    cpu = torch.device("cpu")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy, ref = load_model(policy_dir, cpu), load_model(ref_dir, cpu)
    cfg = TrainConfig(algorithm="dpo", max_length=10_000, precompute_ref=False)
    snap = data.tokenize_rows(rows, tokenizer, cfg.max_length)
    split = objective.Split(snap)
    out = []
    for idx in batches:
        batch = data.make_batch(snap, idx, cfg.max_length, tokenizer.pad_token_id, None, True)
        with torch.no_grad():
            logps, _ = objective.prefixed_logps(policy, batch)
            ref_logps = objective.reference_logps(split, batch, ref, cfg.logps_chunk_size)
            loss, _ = objective.compute_loss(
                cfg,
                policy,
                batch,
                lambda b: objective.reference_logps(split, b, ref, cfg.logps_chunk_size),
            )
        out.append((logps, ref_logps, loss.item()))
    return out


def _trl_side(policy_dir: str, ref_dir: str, rows: list[dict], batches: list[list[int]]):
    """Per batch: (policy logps (2B,), reference logps (2B,), loss) from TRL's DPOTrainer."""
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory(prefix="trl-gate-") as out_dir:
        args = trl.DPOConfig(
            output_dir=out_dir,
            max_length=10_000,
            use_cpu=True,
            bf16=False,  # TRL defaults to bf16 autocast; the gate compares float32
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
        )
        trainer = trl.DPOTrainer(
            model=policy,
            ref_model=ref,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=AutoTokenizer.from_pretrained(policy_dir),
        )
        trainer.model.eval()
        out = []
        for idx in batches:
            inputs = trainer.data_collator([trainer.train_dataset[i] for i in idx])
            with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                logps = torch.cat(trainer.compute_ref_log_probs(trainer.model, inputs))
                ref_logps = torch.cat(trainer.compute_ref_log_probs(trainer.ref_model, inputs))
                loss = trainer.compute_loss(trainer.model, inputs)
            out.append((logps, ref_logps, loss.item()))
    return out


def run_gate(*, policy_dir: str, ref_dir: str, rows: list[dict], batch: int) -> GateResult:
    """Compare both sides on consecutive batches of ``rows`` (at least two batches)."""
    batches = [list(range(i, min(i + batch, len(rows)))) for i in range(0, len(rows), batch)]
    ours = _prefloop_side(policy_dir, ref_dir, rows, batches)
    theirs = _trl_side(policy_dir, ref_dir, rows, batches)
    logp_diff = loss_diff = 0.0
    for (lp, rlp, loss), (tlp, trlp, tloss) in zip(ours, theirs, strict=True):
        logp_diff = max(logp_diff, (lp - tlp).abs().max().item(), (rlp - trlp).abs().max().item())
        loss_diff = max(loss_diff, abs(loss - tloss))
    return GateResult(len(batches), 2 * len(rows), logp_diff, loss_diff)
