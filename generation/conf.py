"""Which backend a worker uses and how it is configured, from settings / the environment.

``GENERATION_BACKEND`` (settings) names the backend; the engine knobs below come from
the environment (see docs/generation.md). ``vllm`` falls back to ``transformers``
where vLLM is not installed.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import environ
from django.conf import settings

logger = logging.getLogger(__name__)
env = environ.Env()


def backend_name() -> str:
    name = getattr(settings, "GENERATION_BACKEND", "transformers")
    if name == "vllm" and importlib.util.find_spec("vllm") is None:
        logger.warning("GENERATION_BACKEND=vllm but vLLM is not installed; using transformers")
        return "transformers"
    return name


def backend_options(name: str) -> dict[str, Any]:
    """Constructor options of backend ``name`` (keyword arguments, all plain values)."""
    dtype = env.str("GENERATION_DTYPE", default="auto")
    if name == "transformers":
        return {
            "dtype": dtype,
            "device": env.str("GENERATION_DEVICE", default="auto"),
            "max_batch_size": env.int("GENERATION_MAX_BATCH_SIZE", default=256),
        }
    if name == "vllm":
        kv_cache = env.str("GENERATION_KV_CACHE_GIB", default="")
        max_len = env.str("GENERATION_MAX_MODEL_LEN", default="")
        max_seqs = env.str("GENERATION_MAX_NUM_SEQS", default="")
        return {
            "dtype": dtype,
            "tensor_parallel_size": env.int("GENERATION_TENSOR_PARALLEL_SIZE", default=1),
            "gpu_memory_utilization": env.float("GENERATION_GPU_MEMORY_UTILIZATION", default=0.9),
            "kv_cache_gib": float(kv_cache) if kv_cache else None,
            "max_model_len": int(max_len) if max_len else None,
            "max_num_seqs": int(max_seqs) if max_seqs else None,
            "enforce_eager": env.bool("GENERATION_ENFORCE_EAGER", default=False),
        }
    return {}
