"""Writes for prompts, responses and tasks; every creator is idempotent.

Content hashes make imports and generation jobs safe to repeat: the same prompt,
the same response text from the same model, or the same pair never appears twice.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import transaction

from annotation.models import Project, Prompt, Response, Task

ROLES = ("system", "user", "assistant")


def messages_normalise(messages: Any) -> list[dict[str, str]]:
    """Validate a conversation; a bare string becomes one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if not isinstance(messages, list) or not messages:
        raise ValueError("a prompt must be a non-empty string or list of {role, content}")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise ValueError(f"message {i} must be an object with 'role' and 'content' only")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"message {i} has role {role!r}; expected one of {ROLES}")
        if not isinstance(content, str):
            raise ValueError(f"message {i} content must be a string")
        out.append({"role": role, "content": content})
    return out


def _sha256(payload: Any) -> str:
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def prompt_hash(messages: list[dict[str, str]]) -> str:
    return _sha256(messages)


def response_hash(text: str, model_version_id: int | None) -> str:
    return _sha256({"text": text, "model_version": model_version_id})


@transaction.atomic
def prompt_get_or_create(
    *,
    project: Project,
    messages: Any,
    tags: list[str] | None = None,
    split: str = Prompt.Split.TRAIN,
    metadata: dict | None = None,
) -> tuple[Prompt, bool]:
    messages = messages_normalise(messages)
    return Prompt.objects.get_or_create(
        project=project,
        content_hash=prompt_hash(messages),
        defaults={
            "messages": messages,
            "tags": tags or [],
            "split": split,
            "metadata": metadata or {},
        },
    )


@transaction.atomic
def response_get_or_create(
    *,
    prompt: Prompt,
    text: str,
    source: str,
    model_version_id: int | None = None,
    sampling: dict | None = None,
    author=None,
    revision_of: Response | None = None,
    metadata: dict | None = None,
) -> tuple[Response, bool]:
    if not isinstance(text, str):
        raise ValueError("response text must be a string")
    return Response.objects.get_or_create(
        prompt=prompt,
        content_hash=response_hash(text, model_version_id),
        defaults={
            "text": text,
            "source": source,
            "model_version_id": model_version_id,
            "sampling": sampling or {},
            "author": author,
            "revision_of": revision_of,
            "metadata": metadata or {},
        },
    )


@transaction.atomic
def task_get_or_create(
    *,
    project: Project,
    response_a: Response,
    response_b: Response | None = None,
    overlap: int | None = None,
    is_gold: bool = False,
    gold_answer: str = "",
) -> tuple[Task, bool]:
    """A pairwise task when ``response_b`` is given, else a binary (thumbs) task."""
    if response_b is not None and response_b.prompt_id != response_a.prompt_id:
        raise ValueError("both responses of a comparison must answer the same prompt")
    if response_b is not None and response_b.pk == response_a.pk:
        raise ValueError("a comparison needs two different responses")
    kind = Task.Kind.BINARY if response_b is None else Task.Kind.PAIRWISE
    return Task.objects.get_or_create(
        kind=kind,
        pair_key=f"{response_a.pk}:{response_b.pk if response_b else ''}",
        defaults={
            "project": project,
            "prompt_id": response_a.prompt_id,
            "response_a": response_a,
            "response_b": response_b,
            "overlap_wanted": overlap or project.overlap,
            "is_gold": is_gold,
            "gold_answer": gold_answer,
        },
    )
