"""Builders shared by the annotation tests (plain functions over the real services).

They live here, not in a ``conftest.py``, so that tests import them by name.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation.models import Membership, Project, Task
from annotation.services import content, projects


def user_build(username: str):
    """A user without a password: hashing one costs about a second per user here."""
    return get_user_model().objects.create_user(username=username)


def project_build(*, owner, slug: str = "demo", **options) -> Project:
    return projects.project_create(slug=slug, owner=owner, **options)


def member_add(*, project: Project, user, role: str = Membership.Role.ANNOTATOR) -> Membership:
    return projects.member_set(project=project, user=user, role=role)


def pairwise_tasks_build(
    *,
    project: Project,
    n: int,
    overlap: int | None = None,
    author_a=None,
    model_versions: tuple = (None, None),
    gold_answer: str = "",
    start: int = 0,
) -> list[Task]:
    """``n`` prompts, each with one A/B comparison."""
    tasks = []
    for i in range(start, start + n):
        prompt, _ = content.prompt_get_or_create(project=project, messages=f"Question {i}?")
        a, _ = content.response_get_or_create(
            prompt=prompt,
            text=f"answer A to {i}",
            source="generated",
            author=author_a,
            model_version_id=model_versions[0].pk if model_versions[0] else None,
        )
        b, _ = content.response_get_or_create(
            prompt=prompt,
            text=f"answer B to {i}",
            source="generated",
            model_version_id=model_versions[1].pk if model_versions[1] else None,
        )
        task, _ = content.task_get_or_create(
            project=project,
            response_a=a,
            response_b=b,
            overlap=overlap,
            is_gold=bool(gold_answer),
            gold_answer=gold_answer,
        )
        tasks.append(task)
    return tasks


def binary_tasks_build(*, project: Project, n: int, overlap: int | None = None) -> list[Task]:
    tasks = []
    for i in range(n):
        prompt, _ = content.prompt_get_or_create(project=project, messages=f"Rate {i}?")
        response, _ = content.response_get_or_create(
            prompt=prompt, text=f"reply {i}", source="generated"
        )
        task, _ = content.task_get_or_create(project=project, response_a=response, overlap=overlap)
        tasks.append(task)
    return tasks
