"""The pre-training corpus: chat conversations answering every demo question in mixed styles."""

from __future__ import annotations

import random
from dataclasses import dataclass

from generation.demo.checker import ANSWER_STYLES
from generation.demo.facts import PHRASINGS, Fact, demo_facts, question_for

Message = dict[str, str]

# Share of each answer style; per fact the counts are exact (largest remainder).
MIXTURE: dict[str, float] = {
    "correct": 0.45,
    "confidently_wrong": 0.10,
    "wrong_guess": 0.25,
    "hedge": 0.20,
}
SAMPLES_PER_FACT = 20


@dataclass(frozen=True)
class Sample:
    fact: Fact
    style: str
    messages: list[Message]


def style_counts(samples_per_fact: int, mixture: dict[str, float] = MIXTURE) -> dict[str, int]:
    """Split `samples_per_fact` among the styles by the largest-remainder method."""
    total = sum(mixture.values())
    exact = {style: samples_per_fact * share / total for style, share in mixture.items()}
    counts = {style: int(value) for style, value in exact.items()}
    by_remainder = sorted(exact, key=lambda style: exact[style] - counts[style], reverse=True)
    for style in by_remainder[: samples_per_fact - sum(counts.values())]:
        counts[style] += 1
    return counts


def _fact_samples(
    fact: Fact, counts: dict[str, int], others: list[str], rng: random.Random
) -> list[Sample]:
    styles = [style for style, count in counts.items() for _ in range(count)]
    rng.shuffle(styles)
    offset = rng.randrange(len(PHRASINGS))
    samples = []
    for i, style in enumerate(styles):
        question = question_for(fact, offset + i)
        answer = ANSWER_STYLES[style](fact, others, rng)
        messages = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        samples.append(Sample(fact, style, messages))
    return samples


def demo_corpus(
    seed: int = 0,
    *,
    samples_per_fact: int = SAMPLES_PER_FACT,
    mixture: dict[str, float] = MIXTURE,
) -> list[Sample]:
    """Samples for every fact, train and held-out alike, shuffled; the same for the same seed."""
    facts = demo_facts(seed)
    others = [fact.capital for fact in facts]
    counts = style_counts(samples_per_fact, mixture)
    rng = random.Random(f"prefloop-demo-corpus-{seed}")
    samples = [s for fact in facts for s in _fact_samples(fact, counts, others, rng)]
    rng.shuffle(samples)
    return samples
