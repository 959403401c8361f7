"""Rounds that need people: the round waits for human labels that arrive through the API,
a deadline ends the wait by the partial-data policy, and enough new human judgments
start a round by themselves.

The Celery tasks are called directly (the house style: no eager mode); the commit hooks
that would enqueue the next step are not run, so each test drives the chain itself.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Judgment, Membership, Task
from annotation.services import projects
from annotation.services.judgments import judgment_submit
from generation.feedback.models import FeedbackLabel
from generation.models import ModelVersion
from tests.training.test_rounds_helpers import (
    JUDGE,
    fast_settings,
    says_the_capital,
    small_project,
    tiny_policy,
)
from training.rounds import autostart, services, tasks
from training.rounds.models import Round

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    return {"owner": make_user("owner"), "ann1": make_user("ann1"), "ann2": make_user("ann2")}


def _human_project(people, slug: str, **options):
    project = small_project(people["owner"], slug=slug, **options)
    for name in ("ann1", "ann2"):
        projects.member_set(project=project, user=people[name], role=Membership.Role.ANNOTATOR)
    return project


def _human_round(project, policy, **overrides) -> Round:
    data = {"labelling": "human", "judge": "", "eval_judge": JUDGE, "samples": 2, **overrides}
    settings = fast_settings(**data)
    return services.round_create(project=project, settings=settings, policy=policy)


def _annotate(client: APIClient, slug: str, limit: int) -> int:
    """Judge up to ``limit`` comparisons like a careful person: the direct answer wins."""
    done = 0
    while done < limit:
        response = client.post(f"/api/projects/{slug}/tasks/next?kind=pairwise")
        if response.status_code == 204:
            break
        task = response.json()
        left, right = (says_the_capital(messages=None, response=task[side], metadata=None)
                       for side in ("left", "right"))
        choice = "left" if left > right else "right" if right > left else "tie"
        answer = client.post(f"/api/assignments/{task['assignment_id']}/judgment",
                             {"choice": choice}, format="json")
        assert answer.status_code == 201, answer.content
        done += 1
    return done


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.slow
def test_a_human_round_waits_for_annotators_then_trains_and_evaluates(
    people, tiny_model_dir, settings, tmp_path
):
    settings.MODELS_DIR = tmp_path / "models"
    project = _human_project(people, "human-loop", overlap=1)
    policy = tiny_policy(tiny_model_dir)
    rnd = _human_round(project, policy)
    for task in (tasks.round_generate, tasks.round_label, tasks.round_wait):
        task(round_id=rnd.pk)
    rnd.refresh_from_db()
    assert rnd.status == Round.Status.WAITING and rnd.step == Round.Step.WAIT
    total = rnd.metrics["coverage"]["total"]
    assert total > 2 and not Judgment.objects.filter(task__project=project).exists()

    _annotate(_client(people["ann1"]), project.slug, limit=total // 2)
    tasks.rounds_waiting_check()  # the periodic check: not enough yet
    rnd.refresh_from_db()
    assert rnd.status == Round.Status.WAITING
    assert rnd.metrics["coverage"]["covered"] == total // 2

    _annotate(_client(people["ann2"]), project.slug, limit=total)
    assert rnd.pk in tasks.rounds_waiting_check()
    rnd.refresh_from_db()
    assert (rnd.status, rnd.step) == (Round.Status.RUNNING, Round.Step.EXPORT)
    for task in (tasks.round_export, tasks.round_train, tasks.round_evaluate, tasks.round_finish):
        task(round_id=rnd.pk)
    rnd.refresh_from_db()
    assert rnd.status == Round.Status.SUCCEEDED, (rnd.error, rnd.notes)
    assert rnd.new_version.parent == policy
    assert rnd.snapshot.rules["include_ai"] is False  # trained on the people's verdicts only
    assert rnd.metrics["data"]["votes_counted"] == rnd.metrics["data"]["rows"] > 0
    assert rnd.metrics["coverage"]["fraction"] == 1.0
    assert rnd.metrics["win_rate"]["judge"] == rnd.eval_judge.name  # the AI evaluates
    assert rnd.timings["wait"]["attempts"] == 3


@pytest.mark.parametrize("policy_name", ["proceed", "fail", "ai_fill"])
def test_the_deadline_ends_the_wait_by_the_partial_data_policy(people, tiny_model_dir, policy_name):
    project = _human_project(people, f"deadline-{policy_name.replace('_', '-')}")
    policy = tiny_policy(tiny_model_dir)
    rnd = _human_round(project, policy, judge=JUDGE, deadline_hours=1.0,
                       partial_policy=policy_name)
    for task in (tasks.round_generate, tasks.round_label, tasks.round_wait):
        task(round_id=rnd.pk)
    _annotate(_client(people["ann1"]), project.slug, limit=1)
    tasks.rounds_waiting_check()
    assert Round.objects.get(pk=rnd.pk).status == Round.Status.WAITING  # deadline not yet

    Round.objects.filter(pk=rnd.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    tasks.rounds_waiting_check()
    rnd.refresh_from_db()
    if policy_name == "fail":
        assert rnd.status == Round.Status.FAILED
        assert "deadline passed with 1/" in rnd.error and "policy: fail" in rnd.error
        return
    assert (rnd.status, rnd.step) == (Round.Status.RUNNING, Round.Step.EXPORT)
    assert "deadline passed with 1/" in rnd.notes[-1]
    ai_labels = FeedbackLabel.objects.filter(judge=rnd.judge, task__project=project)
    if policy_name == "ai_fill":
        unlabelled = rnd.metrics["coverage"]["total"] - 1
        assert ai_labels.count() == unlabelled and "the judge labelled the rest" in rnd.notes[-1]
    else:
        assert not ai_labels.exists()


def test_enough_new_human_judgments_start_a_round(people, tiny_model_dir):
    project = _human_project(people, "auto", overlap=1, auto_round_threshold=2)
    policy = tiny_policy(tiny_model_dir)
    assert autostart.rounds_autostart_check() == []  # no round yet to take settings from
    template = _human_round(project, policy)
    made = ModelVersion.objects.create(name="made-by-round-1", source=str(tiny_model_dir),
                                       parent=policy, version=1)
    Round.objects.filter(pk=template.pk).update(status=Round.Status.SUCCEEDED, new_version=made)
    tasks_ = _pairwise_tasks(project, policy, count=3)
    judgment_submit(annotator=people["ann1"], task=tasks_[0], choice="a")
    # AI verdicts never count (a round's own labels must not start the next round).
    ai = projects.annotator_user_get_or_create(username="ai-x", kind="ai")
    judgment_submit(annotator=ai, task=tasks_[1], choice="a", source="ai")
    assert tasks.rounds_autostart_check() == []
    judgment_submit(annotator=people["ann2"], task=tasks_[2], choice="b")
    started = tasks.rounds_autostart_check()
    assert len(started) == 1
    auto = Round.objects.get(pk=started[0])
    assert auto.auto_started and auto.index == 2 and auto.policy == made
    assert auto.data_scope == "all" and auto.sampling["n"] == 0  # trains on what people said
    assert tasks.rounds_autostart_check() == []  # one round at a time


def _pairwise_tasks(project, policy, count: int) -> list[Task]:
    from annotation.services import content

    out = []
    for prompt in project.prompts.filter(split="train")[:count]:
        a, _ = content.response_get_or_create(
            prompt=prompt, text="The capital is X.", source="generated", model_version_id=policy.pk
        )
        b, _ = content.response_get_or_create(prompt=prompt, text="Maybe Y.", source="generated",
                                              model_version_id=policy.pk)
        out.append(content.task_get_or_create(project=project, response_a=a, response_b=b)[0])
    return out
