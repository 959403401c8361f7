"""Rounds against a served model: the step after training when the policy is an endpoint.

With a LoRA run, the new version reaches the server as a runtime-loaded adapter (vLLM's
``/v1/load_lora_adapter``; the server runs with ``--enable-lora`` and
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``) and is registered as an endpoint version served
there, so the next round generates its candidates on the server. The adapter is the
low-rank difference between the new weights and the weights the server holds
(``lora_adapter``), so a chain of rounds keeps working on the same server (ranks add up).

Without LoRA (or when no low-rank adapter reproduces the new weights) the round stops at
"new version registered" and says how to serve it.
"""

from __future__ import annotations

from pathlib import Path

from generation import endpoints
from generation.models import ModelVersion
from training.rounds import lora_adapter
from training.rounds.models import Round

ADAPTER_DIR = "served-adapter"  # beside the run's final/ folder; the server must read it


def how_to_serve(version: ModelVersion) -> str:
    return (
        f"new version {version.name} registered at {version.source}; to generate on a server, "
        f"run `vllm serve {version.source} --served-model-name {version.name}` and "
        f"`manage.py register_model {version.name}-served {version.source} --endpoint URL "
        f"--served-name {version.name}`, then start the next round from {version.name}-served"
    )


def round_version_serve(*, rnd: Round, version: ModelVersion) -> tuple[ModelVersion | None, str]:
    """(the version the next round starts from, what happened). ``None`` when the round
    must stop with the new version registered but not served."""
    policy = rnd.policy
    rank = int((rnd.training_run.hyperparameters if rnd.training_run else {}).get("lora_r") or 0)
    if rank <= 0:
        return None, f"{how_to_serve(version)} (not a LoRA run: no adapter to load)"
    base_dir = policy.metadata.get("lora_base") or policy.source
    total = rank + int(policy.metadata.get("lora_rank") or 0)
    adapter_dir = Path(version.source).parent / ADAPTER_DIR
    try:
        adapter = lora_adapter.low_rank_adapter_write(
            base_dir=base_dir, tuned_dir=version.source, out_dir=adapter_dir, rank=total
        )
    except (lora_adapter.NotLowRankError, OSError) as exc:
        return None, f"{how_to_serve(version)} (no adapter: {exc})"
    served = endpoints.model_version_endpoint_served(
        parent=policy, name=f"{version.name}-served"[:100], served_name=version.name,
        adapter_path=str(adapter.path), tokenizer_source=version.source,
        round_index=rnd.index, notes=f"LoRA adapter of {version.name} on {policy.served_name}",
        metadata={"lora_base": str(base_dir), "lora_rank": total, "trained_version": version.pk},
    )
    return served, (
        f"adapter {served.served_name} (rank {total}, {len(adapter.modules)} module kinds) "
        f"loaded into {policy.endpoint_url}; the next round generates there"
    )
