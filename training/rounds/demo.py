"""The demo loop: rounds on the capitals task, judged by the answer checker, as a table.

``demo_project_setup`` makes a project with the 240 training questions and the 60
held-out ones (each prompt carries its ``demo_fact``, which the programmatic judge and
the accuracy metric read) and registers the demo model as the first policy.
``table_lines`` formats ``selectors.round_table`` for the terminal; its last line is
``held-out accuracy: B% -> F% (+G points)``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.db import transaction

from annotation.models import Membership, Project, Prompt
from annotation.services import content, projects
from generation.demo import facts
from generation.models import ModelVersion
from generation.services import model_version_register
from training.rounds.selectors import TableRow

OWNER = "loop-owner"
# DESIGN.md, "The demo task": sigmoid DPO β 0.1, AdamW lr 1e-4, 2 epochs at batch 32.
DEMO_HYPERPARAMETERS = {"lr": 1e-4, "beta": 0.1, "epochs": 2, "batch_size": 32,
                        "max_length": 128, "eval_fraction": 0.0}
STEP_COLUMNS = (("generate", "gen"), ("label", "label"), ("export", "export"),
                ("train", "train"), ("evaluate", "eval"))


@transaction.atomic
def demo_project_setup(
    *, slug: str, base_model: Path, binary: bool = False, facts_seed: int = 0
) -> tuple[Project, ModelVersion]:
    """The demo project (made once; run again, it is returned as it is) and the base model."""
    owner = projects.annotator_user_get_or_create(username=OWNER)
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = projects.project_create(
            slug=slug, name=f"Capitals loop ({slug})", owner=owner, overlap=1,
            binary_enabled=binary, guidelines="Prefer the answer that names the right capital.",
        )
    projects.member_set(project=project, user=owner, role=Membership.Role.OWNER)
    for split, prompt_split in (("train", Prompt.Split.TRAIN), ("heldout", Prompt.Split.EVAL)):
        for fact, question in facts.demo_questions(split, facts_seed):
            content.prompt_get_or_create(
                project=project, messages=[{"role": "user", "content": question}],
                split=prompt_split, tags=["demo"],
                metadata={"demo_fact": {"country": fact.country, "capital": fact.capital,
                                        "split": fact.split, "seed": fact.seed}},
            )
    return project, base_version_register(base_model)


def base_version_register(path: Path) -> ModelVersion:
    """``demo-base`` for the demo model folder (a suffixed name if that one is taken)."""
    source = str(Path(path).resolve())
    taken = ModelVersion.objects.filter(name="demo-base").exclude(source=source).exists()
    name = f"demo-base-{hashlib.sha256(source.encode()).hexdigest()[:8]}" if taken else "demo-base"
    return model_version_register(name=name, source=source, notes="the demo model (round 0)")


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def _win(row: TableRow) -> str:
    if row.win_rate is None:
        return "        -        "
    if row.win_low is None:
        return f"{100 * row.win_rate:5.1f}%          "
    return f"{100 * row.win_rate:5.1f}% [{100 * row.win_low:4.1f},{100 * row.win_high:5.1f}]"


def _secs(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.1f}"


def table_lines(rows: list[TableRow], *, metric: str = "held-out accuracy") -> list[str]:
    """The demo loop's table: one line per round, then the before -> after line."""
    width = max([len("policy")] + [len(r.policy) for r in rows])
    new_width = max([len("new version")] + [len(r.new_version or r.status) for r in rows])
    steps = " ".join(f"{short:>6}" for _, short in STEP_COLUMNS)
    head = (
        f"{'round':>5}  {'policy':<{width}}  {'new version':<{new_width}}  {'held-out':>8}  "
        f"{'win vs prev [95% CI]':<19} {'KL':>7} {'len':>5}  {steps}  {'total':>6} (s)"
    )
    lines = [head, "-" * len(head)]
    if rows and rows[0].accuracy_before is not None:
        lines.append(f"{0:>5}  {rows[0].policy:<{width}}  {'':<{new_width}}  "
                     f"{_pct(rows[0].accuracy_before):>8}")
    for row in rows:
        kl = "      -" if row.kl is None else f"{row.kl:7.3f}"
        length = "    -" if row.mean_tokens is None else f"{row.mean_tokens:5.1f}"
        times = " ".join(_secs(row.seconds.get(step)) for step, _ in STEP_COLUMNS)
        total = sum(v for v in row.seconds.values() if v is not None)
        lines.append(
            f"{row.index:>5}  {row.policy:<{width}}  {row.new_version or row.status:<{new_width}}  "
            f"{_pct(row.accuracy):>8}  {_win(row):<19} {kl} {length}  {times}  {total:6.1f}"
        )
    first = rows[0].accuracy_before if rows else None
    last = next((r.accuracy for r in reversed(rows) if r.accuracy is not None), None)
    if first is not None and last is not None:
        points = 100 * (last - first)
        lines.append(f"{metric}: {100 * first:.1f}% -> {100 * last:.1f}% "
                     f"({points:+.1f} points)")
    return lines
