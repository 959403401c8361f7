"""The remote backend: a model behind an OpenAI-compatible server (``vllm serve`` is the reference).

Two ways of talking to the server, chosen when the backend starts:

- **Token mode** (the model's tokenizer loads here, from the version's local folder or the
  Hugging Face cache): prompts are rendered with the same chat template and token ids as the
  in-process backends and sent to ``/v1/completions`` as token ids, with the same
  per-request seeds. Greedy outputs are then token-identical to the in-process vLLM
  backend's. Scoring reads the server's prompt log-probs (vLLM's ``prompt_logprobs``) and
  judge options its ``logprob_token_ids``: both vLLM extensions.
- **Chat mode** (no tokenizer here): ``/v1/chat/completions`` with n, temperature, top_p,
  max_tokens and seed; the server applies its own chat template. Scoring and judge options
  need token ids, so they are not offered.

``capabilities`` says which operations a backend offers; the others raise
``UnsupportedOperationError`` naming what is missing. Requests run concurrently with a
bound on those in flight and retry on 429, 5xx and connection errors
(``remote_http``). Never touches Django.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Sequence
from typing import Any

from generation.backends.base import (
    MAX_SEED,
    BackendError,
    Completion,
    Conversation,
    ModelLoadError,
    OptionRequest,
    SamplingConfig,
    Score,
    ScoreRequest,
    check_prompt_lengths,
    option_token_ids,
    render_prompt_ids,
    request_seed,
    score_token_ids,
)
from generation.backends.remote_http import RemoteClient, RemoteUnavailableError, RetryPolicy

logger = logging.getLogger(__name__)

GENERATE, SCORE, OPTIONS = "generate", "score", "option_logprobs"
DEFAULT_CONTEXT = 4096  # when the server does not say (vLLM reports max_model_len)


class UnsupportedOperationError(BackendError):
    """The server (or the missing tokenizer) cannot do what was asked."""


class RemoteBackend:
    name = "remote"
    closed = False

    def __init__(
        self, model: str, *, base_url: str, served_name: str, api_key_env: str = "",
        tokenizer: str | None = None, max_in_flight: int = 16, timeout: float = 120.0,
        retries: int = 6, backoff: float = 0.5,
    ) -> None:
        self.model, self.served_name = model, served_name
        self.client = RemoteClient(
            base_url=base_url, api_key=_api_key(api_key_env), max_in_flight=max_in_flight,
            timeout=timeout, retry=RetryPolicy(attempts=max(1, retries + 1), backoff=backoff),
        )
        self.is_vllm, self.max_context = self._probe()
        self.tokenizer = _load_tokenizer(tokenizer if tokenizer is not None else model)
        logger.info("remote backend %s (%s) at %s: %s mode, %s", served_name, model, base_url,
                    "token" if self.tokenizer else "chat", sorted(self.capabilities))

    def _probe(self) -> tuple[bool, int]:
        try:
            listing = self.client.get("/v1/models")
        except BackendError as exc:
            raise ModelLoadError(f"cannot reach the inference server: {exc}") from exc
        served = {m.get("id"): m for m in listing.get("data", [])}
        if self.served_name not in served:
            raise ModelLoadError(
                f"the server at {self.client.base_url} serves no model {self.served_name!r} "
                f"(it serves {sorted(served)})"
            )
        try:
            is_vllm = "version" in self.client.get("/version", retry=False)
        except BackendError:
            is_vllm = False
        return is_vllm, int(served[self.served_name].get("max_model_len") or DEFAULT_CONTEXT)

    @property
    def capabilities(self) -> frozenset[str]:
        if self.tokenizer is not None and self.is_vllm:
            return frozenset({GENERATE, SCORE, OPTIONS})
        return frozenset({GENERATE})

    def require(self, operation: str) -> None:
        if operation in self.capabilities:
            return
        missing = [] if self.is_vllm else ["a vLLM server (prompt log-probs, logprob_token_ids)"]
        if self.tokenizer is None:
            missing.append(f"the model's tokenizer on this machine (source {self.model!r})")
        raise UnsupportedOperationError(
            f"remote model {self.served_name!r} at {self.client.base_url} cannot do "
            f"{operation}: it needs {' and '.join(missing)}"
        )

    # --- generation ------------------------------------------------------------------

    def generate(
        self, requests: Sequence[Conversation], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        copies = 1 if sampling.greedy else sampling.n  # as in-process: greedy samples are equal
        if self.tokenizer is None:
            answers = self.client.post_all(
                "/v1/chat/completions", [self._chat_payload(r, sampling, copies) for r in requests]
            )
            rows = [[_chat_completion(c) for c in _choices(a)] for a in answers]
        else:
            prompts = [render_prompt_ids(self.tokenizer, r) for r in requests]
            check_prompt_lengths(prompts, self.max_context)
            payloads = [self._token_payload(ids, sampling, copies) for ids in prompts]
            answers = self.client.post_all("/v1/completions", payloads)
            rows = [[self._completion(c) for c in _choices(a)] for a in answers]
        return [row * (sampling.n // copies) for row in rows]

    def _sampling_fields(self, sampling: SamplingConfig, copies: int, room: int) -> dict:
        return {"model": self.served_name, "n": copies, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "max_tokens": min(sampling.max_tokens, room)}

    def _token_payload(self, ids: list[int], sampling: SamplingConfig, copies: int) -> dict:
        payload = self._sampling_fields(sampling, copies, self.max_context - len(ids))
        payload.update(prompt=ids, logprobs=0)
        if sampling.seed is not None:
            payload["seed"] = request_seed(sampling.seed, ids)
        if self.is_vllm:
            payload["return_token_ids"] = True
        return payload

    def _chat_payload(self, messages: Conversation, sampling: SamplingConfig, copies: int) -> dict:
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        payload = self._sampling_fields(sampling, copies, self.max_context)
        payload.update(messages=messages, logprobs=True)
        if sampling.seed is not None:
            text = json.dumps(messages, sort_keys=True).encode()
            payload["seed"] = zlib.crc32(text, sampling.seed & 0xFFFFFFFF) & MAX_SEED
        if self.is_vllm:
            payload["return_token_ids"] = True
        return payload

    def _completion(self, choice: dict) -> Completion:
        ids = choice.get("token_ids")
        if ids is None:  # a server without vLLM's return_token_ids
            ids = self.tokenizer(choice["text"], add_special_tokens=False)["input_ids"]
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
        return Completion(
            text=choice["text"], token_ids=tuple(ids), token_count=len(ids),
            cumulative_logprob=None if not logprobs else float(sum(logprobs)),
            finish_reason=_finish(choice),
        )

    # --- scoring ---------------------------------------------------------------------

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        self.require(SCORE)
        pairs = [score_token_ids(self.tokenizer, r) for r in requests]
        check_prompt_lengths([full for full, _ in pairs], self.max_context)
        payloads = [
            {"model": self.served_name, "prompt": full, "max_tokens": 1, "temperature": 0,
             "prompt_logprobs": 0}
            for full, _ in pairs
        ]
        answers = self.client.post_all("/v1/completions", payloads)
        scores = []
        for (full, cut), answer in zip(pairs, answers, strict=True):
            entries = _choices(answer)[0].get("prompt_logprobs")
            if entries is None:
                raise UnsupportedOperationError(
                    f"the server at {self.client.base_url} returned no prompt log-probs: "
                    "cannot score"
                )
            start = max(cut, 1)  # entry i: log-prob of token i given tokens < i (0 is None)
            total = sum(entries[i][str(full[i])]["logprob"] for i in range(start, len(full)))
            scores.append(Score(logprob=float(total), token_count=len(full) - cut))
        return scores

    def option_logprobs(self, requests: Sequence[OptionRequest]) -> list[dict[str, float]]:
        self.require(OPTIONS)
        prompts = [
            render_prompt_ids(self.tokenizer, r.messages, r.assistant_prefix) for r in requests
        ]
        check_prompt_lengths(prompts, self.max_context)
        labels = [option_token_ids(self.tokenizer, r.options) for r in requests]
        payloads = [
            {"model": self.served_name, "prompt": ids, "max_tokens": 1, "temperature": 0,
             "logprobs": len(option_ids), "logprob_token_ids": option_ids,
             "return_tokens_as_token_ids": True}
            for ids, option_ids in zip(prompts, labels, strict=True)
        ]
        answers = self.client.post_all("/v1/completions", payloads)
        result = []
        for r, ids, answer in zip(requests, labels, answers, strict=True):
            top = ((_choices(answer)[0].get("logprobs") or {}).get("top_logprobs") or [None])[0]
            if not top or any(f"token_id:{i}" not in top for i in ids):
                raise UnsupportedOperationError(
                    f"the server at {self.client.base_url} did not return the options' "
                    "log-probs (vLLM's logprob_token_ids)"
                )
            result.append(
                {o: float(top[f"token_id:{i}"]) for o, i in zip(r.options, ids, strict=True)}
            )
        return result

    # --- served adapters and lifecycle -----------------------------------------------------

    def load_lora_adapter(self, *, name: str, path: str) -> None:
        """Load a LoRA adapter folder (as the server's machine sees it) under ``name``; then
        ``name`` is a served model. Needs ``vllm serve --enable-lora`` with
        ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``. Loading the same name twice is a no-op."""
        listing = self.client.get("/v1/models")
        if any(m.get("id") == name for m in listing.get("data", [])):
            return
        self.client.post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def can_reload(self, model: str) -> bool:
        return False  # the server owns the weights; new weights come as adapters or a new server

    def reload_weights(self, model: str) -> None:
        raise BackendError("a remote model's weights are changed on its server, not here")

    def close(self) -> None:
        self.closed = True


def _api_key(env_name: str) -> str | None:
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ModelLoadError(f"the API key variable {env_name} is not set in this worker")
    return key


def _load_tokenizer(source: str) -> Any | None:
    if not source or source.startswith(("http://", "https://")):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, ImportError) as exc:
        logger.info("no tokenizer for %s here (%s): chat mode", source, exc)
        return None


def _choices(answer: dict) -> list[dict]:
    choices = answer.get("choices")
    if not choices:
        raise RemoteUnavailableError(f"the server answered without choices: {str(answer)[:300]}")
    return sorted(choices, key=lambda c: c.get("index", 0))


def _finish(choice: dict) -> str:
    return "stop" if choice.get("finish_reason") == "stop" else "length"


def _chat_completion(choice: dict) -> Completion:
    content = (choice.get("logprobs") or {}).get("content") or []
    ids = tuple(choice.get("token_ids") or ())
    return Completion(
        text=choice["message"].get("content") or "", token_ids=ids,
        token_count=len(ids) or len(content),
        cumulative_logprob=float(sum(c["logprob"] for c in content)) if content else None,
        finish_reason=_finish(choice),
    )
