"""Rounds end to end on the tiny model: the whole loop, each step run twice, crashes between
steps, KTO from thumbs, chained rounds.

A programmatic judge labels everything (``test_rounds_helpers.says_the_capital``), so
no round waits; the training settings are the fast ones (one epoch, batch 8).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.models import ExportSnapshot, Feedback, Judgment, Response, Task
from generation.feedback.models import FeedbackJob, FeedbackLabel
from generation.models import GenerationJob, ModelVersion
from tests.training.test_rounds_helpers import (
    FAST,
    JUDGE,
    fast_settings,
    small_project,
    tiny_policy,
)
from training.models import TrainingRun
from training.rounds import services, steps
from training.rounds.models import Round

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
METRICS = ("accuracy", "accuracy_before", "win_rate", "kl", "length", "length_before",
           "leaderboard", "train", "data", "evaluation")


@pytest.fixture
def setup(make_user, tiny_model_dir, settings, tmp_path):
    settings.MODELS_DIR = tmp_path / "models"  # fresh run folders for this test's runs
    owner = make_user("owner")
    return owner, tiny_policy(tiny_model_dir)


def _counts(project) -> dict[str, int]:
    return {
        "generation_jobs": GenerationJob.objects.filter(project=project).count(),
        "feedback_jobs": FeedbackJob.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "tasks": Task.objects.filter(project=project).count(),
        "judgments": Judgment.objects.filter(task__project=project).count(),
        "thumbs": Feedback.objects.filter(response__prompt__project=project).count(),
        "labels": FeedbackLabel.objects.filter(task__project=project).count(),
        "snapshots": ExportSnapshot.objects.filter(project=project).count(),
        "runs": TrainingRun.objects.filter(project=project).count(),
        "versions": ModelVersion.objects.count(),
        "rounds": Round.objects.filter(project=project).count(),
    }


def test_one_round_from_the_command_line_makes_a_version_and_every_metric(setup, tmp_path, capsys):
    owner, policy = setup
    project = small_project(owner, slug="loop-one")
    plot = tmp_path / "rounds.png"
    call_command(
        "run_round", project="loop-one", rounds=1, judge=JUDGE, labelling="programmatic",
        policy=policy.name, sync=True, max_tokens=16, eval_samples=2, plot=str(plot),
        param=[f"{k}={v}" for k, v in FAST.items()],
    )
    rnd = Round.objects.get(project=project)
    assert rnd.status == Round.Status.SUCCEEDED, (rnd.error, rnd.notes)
    assert rnd.step == Round.Step.DONE and set(rnd.steps.values()) == {"done"}
    version = rnd.new_version
    assert version.parent == policy and version.version == 1 and version.round_index == 1
    assert Path(version.source).name == "final"
    assert set(METRICS) <= set(rnd.metrics)
    m = rnd.metrics
    assert m["data"]["rows"] == rnd.training_run.summary["train_rows"] > 0
    assert m["accuracy"]["samples"] == 3 * 2 and 0 <= m["accuracy"]["value"] <= 1
    assert m["win_rate"]["pairs"] == 6 and m["win_rate"]["ci_wilson"] is not None
    assert isinstance(m["kl"]["value"], float) and m["kl"]["reference"] == policy.name
    assert m["length"]["mean_tokens"] > 0
    assert {row["name"] for row in m["leaderboard"]} <= {policy.name, version.name}
    assert all(rnd.timings[s]["seconds"] >= 0 for s in services.ORDER)
    out = capsys.readouterr().out
    assert "round 1: train done" in out
    assert out.strip().splitlines()[-1].startswith("held-out accuracy: ")
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_every_step_run_twice_makes_nothing_twice(setup):
    owner, policy = setup
    project = small_project(owner, slug="loop-twice")
    rnd = services.round_create(project=project, settings=fast_settings(), policy=policy,
                                inline=True)
    for step in services.ORDER:
        rnd = services.round_advance(round_id=rnd.pk, step=step)
        assert rnd.steps[step] == "done", (step, rnd.error)
        after, metrics, timing = _counts(project), dict(rnd.metrics), rnd.timings[step]
        # A re-delivered task: the round has moved past the step, so nothing runs.
        again = services.round_advance(round_id=rnd.pk, step=step)
        assert again.timings[step] == timing and _counts(project) == after
        # The step's body itself again (a crash after the work, before the bookkeeping).
        assert steps.STEPS[step](Round.objects.get(pk=rnd.pk)).state == "done"
        assert _counts(project) == after, step
        assert Round.objects.get(pk=rnd.pk).metrics.get("win_rate") == metrics.get("win_rate")
    assert rnd.status == Round.Status.SUCCEEDED
    assert ModelVersion.objects.filter(parent=policy).count() == 1


class Killed(Exception):
    """Stands for a worker killed after a step's work, before the round recorded it."""


def test_a_round_killed_between_steps_continues_where_it_stopped(setup, monkeypatch):
    owner, policy = setup
    project = small_project(owner, slug="loop-crash")
    real_end, crashed = services._step_end, []

    def dying_end(*, round_id: int, step: str, outcome):
        if step in ("generate", "train") and step not in crashed:
            crashed.append(step)
            raise Killed(step)
        return real_end(round_id=round_id, step=step, outcome=outcome)

    monkeypatch.setattr(services, "_step_end", dying_end)
    rnd = services.round_create(project=project, settings=fast_settings(), policy=policy,
                                inline=True)
    for step in ("generate", "train"):
        with pytest.raises(Killed):
            services.round_run_inline(round_id=rnd.pk)
        rnd.refresh_from_db()
        assert (rnd.step, rnd.status, rnd.steps[step]) == (step, "running", "running")
        rnd = services.round_resume(rnd=rnd, inline=True)  # run_round --resume 1 --sync
    rnd = services.round_run_inline(round_id=rnd.pk)
    assert rnd.status == Round.Status.SUCCEEDED, rnd.error
    assert rnd.timings["generate"]["attempts"] == 2 and rnd.timings["train"]["attempts"] == 2
    assert rnd.timings["export"]["attempts"] == 1
    assert TrainingRun.objects.filter(project=project).count() == 1
    assert ModelVersion.objects.filter(parent=policy).count() == 1
    # One job for the candidates, one per version for the held-out answers.
    assert GenerationJob.objects.filter(project=project).count() == 3


def test_kto_rounds_from_programmatic_thumbs_chain_from_the_initial_reference(setup):
    owner, policy = setup
    project = small_project(owner, slug="loop-kto", binary_enabled=True)
    settings = fast_settings(algorithm="kto", rounds=2, reference="initial")
    first = services.round_create(project=project, settings=settings, policy=policy,
                                  inline=True)
    last = services.round_run_inline(round_id=first.pk)
    r1, r2 = Round.objects.filter(project=project).order_by("index")
    assert last.pk == r2.pk
    assert (r1.status, r2.status) == ("succeeded", "succeeded"), (r1.error, r2.error)
    assert r1.label_kind == Round.LabelKind.THUMBS and r1.snapshot.format == "trl-kto"
    ai_thumbs = Feedback.objects.filter(response__prompt__project=project, source="ai")
    assert ai_thumbs.filter(thumbs_up=True).exists() and ai_thumbs.filter(thumbs_up=False).exists()
    assert not Judgment.objects.filter(task__project=project, task__prompt__split="train").exists()
    assert r2.previous == r1 and r2.policy == r1.new_version
    assert r2.reference == r1.initial_version == policy  # reference: the initial model
    assert r2.new_version.parent == r1.new_version and r2.new_version.version == 2
    assert r2.metrics["kl"]["reference"] == policy.name
