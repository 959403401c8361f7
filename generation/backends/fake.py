"""A deterministic backend with no model: for tests of job plumbing and for laptops without torch.

Texts depend on (prompt, seed, sample index) only; log-probs are minus the length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from generation.backends.base import (
    Completion,
    Conversation,
    OptionRequest,
    SamplingConfig,
    Score,
    ScoreRequest,
    check_model_source,
)

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


class FakeBackend:
    name = "fake"
    closed = False
    max_context = 4096

    def __init__(self, model: str, **_options) -> None:
        check_model_source(model)
        self.model = model

    def generate(
        self, requests: Sequence[Conversation], sampling: SamplingConfig
    ) -> list[list[Completion]]:
        return [[self._one(r, sampling, i) for i in range(sampling.n)] for r in requests]

    def _one(self, request: Conversation, sampling: SamplingConfig, index: int) -> Completion:
        seed = 0 if sampling.seed is None else sampling.seed
        key = f"{self.model}|{request[-1]['content']}|{seed}|{0 if sampling.greedy else index}"
        digest = hashlib.sha256(key.encode()).digest()
        words = [WORDS[b % len(WORDS)] for b in digest[: min(sampling.max_tokens, 6)]]
        return Completion(
            text=" ".join(words), token_ids=tuple(digest[: len(words)]), token_count=len(words),
            cumulative_logprob=-float(len(words)), finish_reason="stop",
        )

    def score(self, requests: Sequence[ScoreRequest]) -> list[Score]:
        return [Score(logprob=-float(len(r.continuation)), token_count=len(r.continuation))
                for r in requests]

    def option_logprobs(self, requests: Sequence[OptionRequest]) -> list[dict[str, float]]:
        return [{o: -float(i + 1) for i, o in enumerate(r.options)} for r in requests]

    def can_reload(self, model: str) -> bool:
        return True

    def reload_weights(self, model: str) -> None:
        self.model = model

    def close(self) -> None:
        self.closed = True
