"""The real-model loop's pieces that need no model: the project's prompts, the accuracy metric."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from annotation.models import Prompt
from training.rounds.evaluation import demo_accuracy, task_score
from training.rounds.instruct_demo import instruct_project_setup


@pytest.mark.django_db
def test_project_has_train_and_held_out_prompts_with_constraints_once():
    project = instruct_project_setup(slug="instruct-t", train=12, held_out=4, seed=1)
    again = instruct_project_setup(slug="instruct-t", train=12, held_out=4, seed=1)
    assert again.pk == project.pk
    prompts = Prompt.objects.filter(project=project)
    assert prompts.count() == 16
    assert prompts.filter(split=Prompt.Split.EVAL).count() == 4
    assert all(p.metadata["instruct"]["constraints"] for p in prompts)
    assert all(p.tags == ["instruct"] for p in prompts)


def sample(text: str, metadata: dict, prompt_id: int = 1):
    prompt = SimpleNamespace(metadata=metadata, messages=[{"role": "user", "content": "q"}])
    return SimpleNamespace(prompt=prompt, prompt_id=prompt_id,
                           response=SimpleNamespace(text=text))


def test_task_score_reads_instruct_constraints_strictly_and_capitals_facts():
    lower_no_commas = {"instruct": {"constraints": [{"kind": "lowercase"},
                                                    {"kind": "no_commas"}]}}
    assert task_score(sample("all good here", lower_no_commas)) == 1.0
    assert task_score(sample("all good, here", lower_no_commas)) == 0.0  # one of two: fails
    fact = {"demo_fact": {"country": "Zubria", "capital": "Vell", "split": "heldout", "seed": 0}}
    assert task_score(sample("The capital of Zubria is Vell.", fact)) in (0.0, 1.0)
    assert task_score(sample("anything", {})) is None


def test_accuracy_counts_only_prompts_of_a_task():
    meta = {"instruct": {"constraints": [{"kind": "no_commas"}]}}
    samples = [sample("yes", meta, 1), sample("no, sir", meta, 1), sample("x", {}, 2)]
    assert demo_accuracy(samples) == {"value": 0.5, "samples": 2, "questions": 1}
