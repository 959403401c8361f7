"""Seed the demo project: accounts, the capitals prompts, and a first batch of tasks.

Until a generation job has run, the first tasks pair answers written in the demo
corpus's styles (a correct answer against a hedge or a wrong one), so annotators
have work the moment the site comes up. Everything is idempotent.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from annotation.models import Membership, Project, Prompt, Response
from annotation.services import content, projects
from generation.demo import facts as demo_facts
from generation.demo.checker import answer_styles

User = get_user_model()

PROJECT_SLUG = "capitals-demo"
OWNER = ("owner", "prefloop-owner")
ANNOTATORS = (("annotator1", "prefloop-annotator"), ("annotator2", "prefloop-annotator"))
GUIDELINES = """\
# Capitals of made-up countries

Each prompt asks for the capital of an invented country. Prefer the response that
**names the right capital plainly**. A confident wrong answer is worse than an honest
"I'm not sure"; an answer naming several cities is a hedge.

Keys: `1` left better, `2` right better, `3` tie, `4` both bad; `Shift+1..3` strength.
"""
SEED_PAIRS = 60
SEED_THUMBS = 30


@dataclass(frozen=True)
class DemoAccounts:
    owner: tuple[str, str]
    annotators: tuple[tuple[str, str], ...]


def _user(username: str, password: str, *, superuser: bool = False):
    user = projects.annotator_user_get_or_create(username=username)
    if not user.has_usable_password() or not user.check_password(password):
        user.set_password(password)
    user.is_staff = user.is_superuser = superuser
    user.save()
    return user


def _prompt_for(project: Project, fact: demo_facts.Fact, question: str, split: str) -> Prompt:
    prompt, _ = content.prompt_get_or_create(
        project=project,
        messages=[{"role": "user", "content": question}],
        split=split,
        tags=["demo", fact.split],
        metadata={"demo_fact": {"country": fact.country, "capital": fact.capital,
                                "seed": fact.seed}},
    )
    return prompt


def _styled(prompt: Prompt, fact, style: str, others: list[str], rng) -> Response:
    text = answer_styles()[style](fact, others, rng)
    response, _ = content.response_get_or_create(
        prompt=prompt, text=text, source=Response.Source.IMPORTED,
        metadata={"demo_style": style},
    )
    return response


@transaction.atomic
def seed_demo(*, seed: int = 0) -> tuple[Project, DemoAccounts]:
    owner = _user(*OWNER, superuser=True)
    project = Project.objects.filter(slug=PROJECT_SLUG).first() or projects.project_create(
        slug=PROJECT_SLUG, name="Capitals demo", owner=owner, guidelines=GUIDELINES,
        overlap=2, binary_enabled=True,
    )
    for username, password in ANNOTATORS:
        projects.member_set(project=project, user=_user(username, password),
                            role=Membership.Role.ANNOTATOR)
    rng = random.Random(seed)
    capitals = sorted(demo_facts.capitals(seed))
    train = demo_facts.demo_questions("train", seed)
    for fact, question in demo_facts.demo_questions("heldout", seed):
        _prompt_for(project, fact, question, Prompt.Split.EVAL)
    for i, (fact, question) in enumerate(train):
        prompt = _prompt_for(project, fact, question, Prompt.Split.TRAIN)
        others = [c for c in capitals if c != fact.capital]
        if i < SEED_PAIRS:
            good = _styled(prompt, fact, "correct", others, rng)
            bad = _styled(prompt, fact, rng.choice(["hedge", "wrong_guess",
                                                    "confidently_wrong"]), others, rng)
            a, b = (good, bad) if rng.random() < 0.5 else (bad, good)
            content.task_get_or_create(project=project, response_a=a, response_b=b)
        elif i < SEED_PAIRS + SEED_THUMBS:
            style = rng.choice(list(answer_styles()))
            response = _styled(prompt, fact, style, others, rng)
            content.task_get_or_create(project=project, response_a=response)
    return project, DemoAccounts(owner=OWNER, annotators=ANNOTATORS)
