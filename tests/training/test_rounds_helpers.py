"""Set-up shared by the round tests (this module holds no tests).

The tiny test model (``tiny_model_dir``, 30 pre-training steps) never names the right
capital, so the demo checker would call every pair a tie. The round tests judge with
:func:`says_the_capital` instead: it passes the answers that open like a direct answer
("The capital of ..."), which the tiny model writes about a third of the time, so pairs
and thumbs have both verdicts, and one round of training measurably moves towards it.
"""

from __future__ import annotations

from pathlib import Path

from annotation.models import Project, Prompt
from annotation.services import content, projects
from generation.demo import facts
from generation.models import ModelVersion
from generation.services import model_version_register
from training.rounds.config import RoundSettings

SCORER = "tests.training.test_rounds_helpers.says_the_capital"
JUDGE = f"programmatic:{SCORER}"
FAST = {"lr": 1e-3, "epochs": 1, "batch_size": 8, "max_length": 64, "eval_fraction": 0.0,
        "threads": 1}


def says_the_capital(*, messages, response: str, metadata) -> float:
    return 1.0 if response.strip().startswith("The capital") else 0.0


def small_project(owner, *, slug: str, train: int = 8, held_out: int = 3, **options) -> Project:
    """A project with the first ``train`` / ``held_out`` demo questions (with their facts)."""
    project = projects.project_create(slug=slug, owner=owner, **options)
    for split, stored, count in (("train", Prompt.Split.TRAIN, train),
                                 ("heldout", Prompt.Split.EVAL, held_out)):
        for fact, question in facts.demo_questions(split)[:count]:
            content.prompt_get_or_create(
                project=project, messages=[{"role": "user", "content": question}],
                split=stored, tags=["demo"],
                metadata={"demo_fact": {"country": fact.country, "capital": fact.capital,
                                        "split": fact.split, "seed": fact.seed}},
            )
    return project


def tiny_policy(model_dir: Path, name: str = "tiny-policy") -> ModelVersion:
    return model_version_register(name=name, source=str(model_dir))


def fast_settings(**overrides) -> RoundSettings:
    data = {"labelling": "programmatic", "judge": JUDGE, "samples": 4, "max_tokens": 16,
            "eval_samples": 2, "eval_max_tokens": 16, "bootstrap": 50,
            "hyperparameters": FAST, **overrides}
    return RoundSettings.from_dict(data)
