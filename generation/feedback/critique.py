"""Self-critique and revision (CAI's supervised phase, Bai et al. 2022 §3), on any backend.

For each (prompt, response): sample a principle, ask the model to critique the
response under it, then to revise the response in the light of the critique; repeat
for ``rounds`` rounds, each with a freshly sampled principle and the latest revision
as the response. CAI sampled at temperature 1 and drew one principle per revision
step. Every round of a batch is two engine calls (all critiques, then all revisions).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from generation.backends.base import Conversation, GenerationBackend, SamplingConfig
from generation.feedback import prompts
from generation.feedback.constitution import PrincipleSpec, principles_sample


@dataclass(frozen=True)
class CritiqueItem:
    key: int  # the original response's id: seeds the principle draws
    messages: Conversation
    response: str


@dataclass(frozen=True)
class Round:
    principle: str
    critique: str
    revision: str

    def as_dict(self) -> dict:
        return asdict(self)


def round_principle(
    principles: Sequence[PrincipleSpec], *, seed: int, key: int, round_index: int
) -> PrincipleSpec:
    """The principle of one round: a function of (seed, item, round) only."""
    return principles_sample(principles, k=1, seed=seed, key=f"critique:{key}:{round_index}")[0]


class CritiqueReviser:
    def __init__(
        self,
        backend: GenerationBackend,
        principles: Sequence[PrincipleSpec],
        *,
        rounds: int = 1,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
    ) -> None:
        if not 1 <= rounds <= 16:
            raise ValueError("rounds must be between 1 and 16")
        self.backend, self.principles, self.rounds, self.seed = backend, principles, rounds, seed
        self.sampling = sampling or SamplingConfig(temperature=1.0, max_tokens=64)
        self.engine_seconds = 0.0

    def run(self, items: Sequence[CritiqueItem]) -> list[list[Round]]:
        """One trace (a list of rounds) per item, in order."""
        current = [item.response for item in items]
        traces: list[list[Round]] = [[] for _ in items]
        for r in range(self.rounds):
            chosen = [
                round_principle(self.principles, seed=self.seed, key=item.key, round_index=r)
                for item in items
            ]
            critiques = self._sample(
                [prompts.critique_messages(item.messages, current[i], chosen[i])
                 for i, item in enumerate(items)], r, 0,
            )
            revisions = self._sample(
                [prompts.revision_messages(item.messages, current[i], chosen[i], critiques[i])
                 for i, item in enumerate(items)], r, 1,
            )
            for i in range(len(items)):
                traces[i].append(Round(chosen[i].key, critiques[i], revisions[i]))
                current[i] = revisions[i]
        return traces

    def _sample(self, conversations: list[list[dict]], round_index: int, step: int) -> list[str]:
        if not conversations:
            return []
        seed = self.sampling.seed if self.sampling.seed is not None else self.seed
        sampling = SamplingConfig(
            n=1, temperature=self.sampling.temperature, top_p=self.sampling.top_p,
            max_tokens=self.sampling.max_tokens, seed=(seed + 2 * round_index + step) % 2**31,
        )
        started = time.perf_counter()
        try:
            outputs = self.backend.generate(conversations, sampling)
        finally:
            self.engine_seconds += time.perf_counter() - started
        return [row[0].text.strip() for row in outputs]
