"""Checking responses against an instruction-following prompt's constraints.

:func:`instruct_score` is a programmatic judge (``programmatic:generation.instruct.
checker.instruct_score``): the share of the prompt's constraints a response satisfies,
so a pair that differs in one constraint still gets a label. :func:`prompt_passes` is
the strict, prompt-level reading used for the held-out "constraint accuracy" (IFEval's
strict prompt accuracy): every constraint holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from generation.instruct.constraints import check


def constraints_of(metadata: Mapping[str, Any] | None) -> list[Mapping[str, Any]] | None:
    block = (metadata or {}).get("instruct")
    if not isinstance(block, Mapping):
        return None
    constraints = block.get("constraints")
    return list(constraints) if isinstance(constraints, list) and constraints else None


def results(constraints: Sequence[Mapping[str, Any]], text: str) -> list[bool]:
    return [check(c, text) for c in constraints]


def prompt_passes(constraints: Sequence[Mapping[str, Any]], text: str) -> bool:
    return all(results(constraints, text))


def instruct_score(
    *, messages: Sequence[Mapping[str, str]], response: str, metadata: Mapping[str, Any]
) -> float | None:
    """Share of constraints satisfied; None for prompts without ``instruct`` metadata."""
    constraints = constraints_of(metadata)
    if constraints is None:
        return None
    passed = results(constraints, response)
    return sum(passed) / len(passed)
