"""Shared set-up for the AI-feedback tests: demo-task comparisons with known answers."""

from __future__ import annotations

import random
from dataclasses import dataclass

from annotation.models import Project, Prompt, Response, Task
from annotation.services import content, projects
from generation.demo import facts
from generation.demo.checker import answer_styles, check_answer

DEMO_JUDGE = "programmatic:generation.feedback.judges.programmatic.demo_capital_score"
STYLES = ("correct", "confidently_wrong", "wrong_guess", "hedge")


@dataclass(frozen=True)
class DemoPair:
    task: Task
    a_correct: bool
    b_correct: bool


def demo_prompt(project: Project, fact: facts.Fact, question: str, split: str = "train") -> Prompt:
    prompt, _ = content.prompt_get_or_create(
        project=project, messages=[{"role": "user", "content": question}], split=split,
        tags=["demo"], metadata={"demo_fact": {"country": fact.country, "capital": fact.capital,
                                               "seed": fact.seed}},
    )
    return prompt


def demo_pairs(
    project: Project, *, count: int, seed: int = 0, mixed_only: bool = False,
    overlap: int | None = None,
) -> list[DemoPair]:
    """``count`` comparisons of demo answers in the pre-training styles; with
    ``mixed_only`` every pair holds one correct and one wrong answer."""
    rng = random.Random(seed)
    capitals = sorted(facts.capitals(0))
    out = []
    for fact, question in facts.demo_questions("train", 0)[:count]:
        prompt = demo_prompt(project, fact, question)
        others = [c for c in capitals if c != fact.capital]
        first = "correct" if mixed_only else rng.choice(STYLES)
        second = rng.choice(STYLES[1:]) if mixed_only else rng.choice(STYLES)
        texts = [answer_styles()[style](fact, others, rng) for style in (first, second)]
        if texts[0] == texts[1]:
            texts[1] += " Yes."
        if mixed_only and rng.random() < 0.5:
            texts.reverse()
        a, b = (_response(prompt, text) for text in texts)
        task, _ = content.task_get_or_create(project=project, response_a=a, response_b=b,
                                             overlap=overlap)
        out.append(DemoPair(task, check_answer(fact, a.text), check_answer(fact, b.text)))
    return out


def _response(prompt: Prompt, text: str) -> Response:
    response, _ = content.response_get_or_create(
        prompt=prompt, text=text, source=Response.Source.IMPORTED
    )
    return response


def human(username: str, project: Project, role: str = "annotator"):
    user = projects.annotator_user_get_or_create(username=username)
    projects.member_set(project=project, user=user, role=role)
    return user
