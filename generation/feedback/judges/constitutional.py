"""The constitutional judge: CAI's multiple-choice feedback, read from option log-probs.

For each pair it samples ``principles_per_label`` principles (CAI samples one per
label; more is an ensemble), asks each principle's comparison question with the
responses in both orders (RLAIF's position-bias fix) and reads P(A) from the
log-probabilities of the option tokens through the backend's ``option_logprobs``
(vLLM: ``logprob_token_ids``) — never from sampled text. All reads of a batch go to
the engine in one call, so both orders of a pair share a batch and the prompt prefix.

With ``chain_of_thought`` the judge first writes a greedy rationale per read (RLAIF
§2.1.2: greedy, then score), then reads the option after it. Such probabilities
collapse to about 0 or 1, so each read is clamped to ``clamp`` (CAI: 0.4..0.6).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from generation.backends.base import GenerationBackend, PromptTooLongError, SamplingConfig
from generation.feedback import prompts
from generation.feedback.constitution import PrincipleSpec, principles_sample
from generation.feedback.judges.base import (
    JudgeError,
    OrderScore,
    Pair,
    PairLabel,
    label_from_orders,
    option_probability,
)

CAI_CLAMP = (0.4, 0.6)


@dataclass(frozen=True)
class ConstitutionalSettings:
    principles_per_label: int = 1
    chain_of_thought: bool = False
    reasoning_max_tokens: int = 48
    clamp: tuple[float, float] | None = None  # default: CAI_CLAMP with chain of thought
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.principles_per_label, int) or self.principles_per_label < 1:
            raise JudgeError("principles_per_label must be a positive integer")
        if not isinstance(self.reasoning_max_tokens, int) or self.reasoning_max_tokens < 1:
            raise JudgeError("reasoning_max_tokens must be a positive integer")
        if self.clamp is not None:
            low, high = self.clamp
            if not 0 <= low < 0.5 < high <= 1:
                raise JudgeError("clamp must be [low, high] with 0 <= low < 0.5 < high <= 1")

    @property
    def bounds(self) -> tuple[float, float] | None:
        if self.clamp is not None:
            return tuple(self.clamp)
        return CAI_CLAMP if self.chain_of_thought else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConstitutionalSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise JudgeError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        data = dict(data)
        if data.get("clamp") is not None:
            data["clamp"] = tuple(float(x) for x in data["clamp"])
        return cls(**data)


@dataclass(frozen=True)
class _Read:
    pair: int  # index in the batch
    principle: PrincipleSpec
    first: str


class ConstitutionalJudge:
    method = "constitutional"

    def __init__(
        self,
        backend: GenerationBackend,
        principles: Sequence[PrincipleSpec],
        settings: ConstitutionalSettings | None = None,
    ) -> None:
        self.backend = backend
        self.principles = list(principles)
        self.settings = settings or ConstitutionalSettings()
        if self.settings.principles_per_label > len(self.principles):
            raise JudgeError(
                f"principles_per_label={self.settings.principles_per_label} but the "
                f"constitution has {len(self.principles)} principles"
            )
        self.engine_seconds = 0.0  # time spent inside backend calls, for progress and bench

    def sampled_principles(self, pair: Pair) -> list[PrincipleSpec]:
        k, seed = self.settings.principles_per_label, self.settings.seed
        return principles_sample(self.principles, k=k, seed=seed, key=f"pair:{pair.key}")

    def label(self, pairs: Sequence[Pair]) -> list[PairLabel | None]:
        reads = [
            _Read(index, principle, first)
            for index, pair in enumerate(pairs)
            for principle in self.sampled_principles(pair)
            for first in ("a", "b")
        ]
        reasoning = self._reason(pairs, reads) if self.settings.chain_of_thought else None
        requests = [
            prompts.comparison_request(
                pairs[r.pair].messages, r.principle, *_ordered(pairs[r.pair], r.first),
                reasoning=None if reasoning is None else reasoning[i],
            )
            for i, r in enumerate(reads)
        ]
        try:
            logprobs = self._timed(self.backend.option_logprobs, requests)
        except PromptTooLongError as exc:
            raise JudgeError(f"comparison {pairs[reads[exc.index].pair].key}: {exc}") from exc
        by_pair: list[list[OrderScore]] = [[] for _ in pairs]
        for i, (read, lps) in enumerate(zip(reads, logprobs, strict=True)):
            by_pair[read.pair].append(
                OrderScore(
                    principle=read.principle.key, first=read.first,
                    p_option_a=option_probability(lps, "A"),
                    reasoning="" if reasoning is None else reasoning[i],
                )
            )
        return [label_from_orders(orders, self.settings.bounds) for orders in by_pair]

    def _reason(self, pairs: Sequence[Pair], reads: list[_Read]) -> list[str]:
        conversations = [
            prompts.reasoning_request(pairs[r.pair].messages, r.principle,
                                      *_ordered(pairs[r.pair], r.first))
            for r in reads
        ]
        greedy = SamplingConfig(n=1, temperature=0.0, max_tokens=self.settings.reasoning_max_tokens)
        try:
            outputs = self._timed(self.backend.generate, conversations, greedy)
        except PromptTooLongError as exc:
            raise JudgeError(f"comparison {pairs[reads[exc.index].pair].key}: {exc}") from exc
        return [row[0].text.strip() for row in outputs]

    def _timed(self, call, *args):
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.engine_seconds += time.perf_counter() - started


def _ordered(pair: Pair, first: str) -> tuple[str, str]:
    return (pair.a, pair.b) if first == "a" else (pair.b, pair.a)
