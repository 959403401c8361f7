"""Accuracy of a model on the demo questions, judged by `check_answer`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from generation.demo.checker import check_answer
from generation.demo.facts import Fact, Split, demo_questions


@dataclass(frozen=True)
class QuestionResult:
    fact: Fact
    question: str
    answers: list[str]
    correct: list[bool]


@dataclass(frozen=True)
class DemoEvaluation:
    results: list[QuestionResult]

    @property
    def accuracy(self) -> float:
        flags = [flag for result in self.results for flag in result.correct]
        return sum(flags) / len(flags) if flags else 0.0


def generate_answers(
    model,
    tokenizer,
    questions: list[str],
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    batch_size: int = 256,
) -> list[str]:
    """One answer per question through the chat template; temperature 0 means greedy."""
    answers: list[str] = []
    for start in range(0, len(questions), batch_size):
        answers += _generate_batch(
            model, tokenizer, questions[start : start + batch_size], temperature, max_new_tokens
        )
    return answers


@torch.no_grad()
def _generate_batch(
    model, tokenizer, questions: list[str], temperature: float, max_new_tokens: int
) -> list[str]:
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in questions
    ]
    tokenizer.padding_side = "left"
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    inputs = inputs.to(model.device)
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
    output = model.generate(
        **inputs,
        **(sampling if temperature > 0 else {"do_sample": False}),
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def demo_evaluation(
    model,
    tokenizer,
    split: Split = "heldout",
    *,
    samples_per_question: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 32,
    facts_seed: int = 0,
) -> DemoEvaluation:
    """Per-question answers and verdicts; `seed` seeds sampling, `facts_seed` picks the facts."""
    questions = demo_questions(split, facts_seed)
    n = samples_per_question if temperature > 0 else 1
    flat = [question for _, question in questions for _ in range(n)]
    was_training = model.training
    model.eval()
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        answers = generate_answers(
            model, tokenizer, flat, temperature=temperature, max_new_tokens=max_new_tokens
        )
    model.train(was_training)
    results = []
    for i, (fact, question) in enumerate(questions):
        mine = answers[i * n : (i + 1) * n]
        results.append(QuestionResult(fact, question, mine, [check_answer(fact, a) for a in mine]))
    return DemoEvaluation(results)


def demo_accuracy(
    model,
    tokenizer,
    split: Split = "heldout",
    samples_per_question: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
    max_new_tokens: int = 32,
    *,
    facts_seed: int = 0,
) -> float:
    """Share of sampled answers `check_answer` accepts (temperature 0: one greedy answer each)."""
    return demo_evaluation(
        model,
        tokenizer,
        split,
        samples_per_question=samples_per_question,
        temperature=temperature,
        seed=seed,
        max_new_tokens=max_new_tokens,
        facts_seed=facts_seed,
    ).accuracy
