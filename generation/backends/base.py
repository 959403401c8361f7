"""The generation backend interface: plain dataclasses and a Protocol, no heavy imports.

A backend turns conversations into completions (``generate``) and reads log-probs of
given text (``score``, ``option_logprobs``) for AI judges and evaluation. Chat
templates are applied inside the backend, from the model's own tokenizer, by the
helpers at the bottom of this module, so that every backend sends the model the
same token ids. Backends take plain arguments and never touch Django.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from annotation.io.paths import UnsafePath, safe_path_within

Message = dict[str, str]
Conversation = Sequence[Message]

MAX_N = 64
MAX_SEED = 2**31 - 1


class BackendError(Exception):
    """A request that cannot succeed as asked; its message is shown to the owner as is."""


class ModelLoadError(BackendError):
    """The model cannot be loaded: unknown path or hub id, broken files, engine start failed."""


class ModelTooLargeError(ModelLoadError):
    """The model's weights do not fit the memory of this machine."""


class PromptTooLongError(BackendError):
    """A prompt leaves no room to generate in the model's context window."""

    def __init__(self, message: str, *, index: int, length: int, limit: int) -> None:
        super().__init__(message)
        self.index, self.length, self.limit = index, length, limit


class InvalidSamplingError(BackendError, ValueError):
    """A sampling parameter is out of range or unknown."""


@dataclass(frozen=True)
class SamplingConfig:
    """What to sample. ``temperature == 0`` is greedy; ``seed`` makes sampling repeatable.

    With a seed, each request's samples depend only on (seed, prompt tokens) on the
    vLLM backend, and on (seed, the whole call) on the transformers backend.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 64
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (isinstance(self.n, int) and 1 <= self.n <= MAX_N, f"n must be 1..{MAX_N}"),
            (_is_number(self.temperature) and 0 <= self.temperature <= 10,
             "temperature must be between 0 (greedy) and 10"),
            (_is_number(self.top_p) and 0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (isinstance(self.max_tokens, int) and self.max_tokens >= 1,
             "max_tokens must be a positive integer"),
            (self.seed is None or (isinstance(self.seed, int) and 0 <= self.seed <= MAX_SEED),
             f"seed must be an integer 0..{MAX_SEED} or null"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidSamplingError(f"invalid sampling: {message}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidSamplingError(
                f"invalid sampling: unknown parameter(s) {unknown}; expected {sorted(known)}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Completion:
    text: str
    token_ids: tuple[int, ...]
    token_count: int
    cumulative_logprob: float | None
    finish_reason: str  # "stop" (end of sequence) or "length" (max_tokens / context)


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``continuation`` as the start of the assistant's reply to ``messages``.

    ``assistant_prefix`` is text already in the reply before the continuation
    (e.g. ``"The answer is: ("`` for a multiple-choice judge).
    """

    messages: Conversation
    continuation: str
    assistant_prefix: str = ""


@dataclass(frozen=True)
class Score:
    logprob: float  # summed natural-log probability of the continuation's tokens
    token_count: int


@dataclass(frozen=True)
class OptionRequest:
    """Log-probs of single-token ``options`` (e.g. "A", "B") at the next position."""

    messages: Conversation
    options: tuple[str, ...]
    assistant_prefix: str = ""


class GenerationBackend(Protocol):
    name: str
    model: str
    max_context: int
    closed: bool  # True once close() ran (or the engine died): the registry starts a new one

    def generate(
        self, requests: Sequence[Conversation], sampling: SamplingConfig
    ) -> list[list[Completion]]: ...

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]: ...

    def option_logprobs(self, requests: Sequence[OptionRequest]) -> list[dict[str, float]]: ...

    def can_reload(self, model: str) -> bool: ...

    def reload_weights(self, model: str) -> None: ...

    def close(self) -> None: ...


# --- Shared helpers (tokenizer is any Hugging Face tokenizer) -------------------------


def render_prompt_ids(
    tokenizer: Any, messages: Conversation, assistant_prefix: str = ""
) -> list[int]:
    """Token ids of the conversation followed by the assistant turn's opening."""
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:  # a base model without a template: a plain transcript
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
    return encode(tokenizer, text + assistant_prefix)


def score_token_ids(tokenizer: Any, request: ScoreRequest) -> tuple[list[int], int]:
    """(all token ids, where the continuation starts): tokenised together, split where the
    prompt's own tokens stop matching (as lm-evaluation-harness does)."""
    prefix = render_prompt_ids(tokenizer, request.messages, request.assistant_prefix)
    full = render_prompt_ids(
        tokenizer, request.messages, request.assistant_prefix + request.continuation
    )
    cut = 0
    for a, b in zip(prefix, full, strict=False):
        if a != b:
            break
        cut += 1
    return full, cut


def encode(tokenizer: Any, text: str) -> list[int]:
    # The template already holds any BOS token, so none is added here.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def option_token_ids(tokenizer: Any, options: Sequence[str]) -> list[int]:
    ids = []
    for option in options:
        tokens = encode(tokenizer, option)
        if len(tokens) != 1:
            raise BackendError(
                f"option {option!r} is {len(tokens)} tokens for this tokenizer; "
                "option labels must be single tokens (e.g. 'A', 'B')"
            )
        ids.append(tokens[0])
    return ids


def check_prompt_lengths(prompts: Sequence[Sequence[int]], limit: int, *, room: int = 1) -> None:
    """Raise PromptTooLongError for the first prompt that leaves < ``room`` free tokens."""
    for index, ids in enumerate(prompts):
        if len(ids) + room > limit:
            raise PromptTooLongError(
                f"prompt is {len(ids)} tokens but the model's context is {limit} tokens "
                f"(at least {room} must be left to {'generate' if room else 'score'})",
                index=index, length=len(ids), limit=limit,
            )


def request_seed(seed: int, prompt_ids: Sequence[int]) -> int:
    """A per-request seed from the job seed and the prompt: independent of batch order."""
    data = b"".join(i.to_bytes(4, "little", signed=False) for i in prompt_ids)
    return zlib.crc32(data, seed & 0xFFFFFFFF) & MAX_SEED


def eos_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


# --- Preflight: fail fast and clearly before an engine starts --------------------------

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def looks_local(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.path.exists(model)


def check_model_source(model: str, *, available_bytes: int | None = None) -> None:
    """A local model folder must exist, hold a config.json and, when ``available_bytes``
    is given, weights that fit in it. Hub ids pass through (they resolve from the local
    Hugging Face cache when the engine loads them)."""
    if not looks_local(model):
        return
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model path {model} does not exist or is not a folder")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model path {model} holds no config.json (not a Hugging Face model)")
    weights = sum(p.stat().st_size for p in path.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    if available_bytes is not None and weights > available_bytes:
        raise ModelTooLargeError(
            f"model {model} has {weights / 2**30:.1f} GiB of weights but only "
            f"{available_bytes / 2**30:.1f} GiB of memory is available on this machine"
        )


def check_model_source_confined(model: str, *, roots: Sequence[Path]) -> None:
    """A local model path must lie inside one of ``roots`` (symlinks resolved); hub ids
    pass. What the API enforces: owners name folders on the workers, never any path."""
    if not looks_local(model):
        return
    try:
        safe_path_within(roots, model)
    except UnsafePath as exc:
        raise ModelLoadError(
            f"model path {model} does not exist or is not under the folders models may be "
            f"loaded from (PREFLOOP_MODEL_ROOTS): {exc}"
        ) from exc


def ram_available() -> int:
    import psutil  # light, but only needed here

    return int(psutil.virtual_memory().available)
