"""The AI-feedback REST API and management commands: owners only, one service per call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.models import Judgment
from annotation.services.projects import project_create
from generation.feedback import runner
from generation.feedback.models import FeedbackJob, FeedbackLabel, Judge
from generation.feedback.services import judges
from generation.services import model_version_register
from tests.support.feedback import DEMO_JUDGE, demo_pairs, human

pytestmark = pytest.mark.django_db
CHECKER = "generation.feedback.judges.programmatic.demo_capital_score"


@pytest.fixture
def setup(make_user, monkeypatch):
    owner = make_user("owner")
    project = project_create(slug="api", owner=owner)
    demo_pairs(project, count=6, mixed_only=True)
    sent = []
    monkeypatch.setattr("generation.feedback.tasks.feedback_job_execute.apply_async",
                        lambda **kw: sent.append(kw))
    client = APIClient()
    client.force_authenticate(owner)
    return project, owner, client, sent


def test_owner_creates_a_judge_and_a_job_and_follows_it(setup, django_capture_on_commit_callbacks):
    project, _, client, sent = setup
    judges_url = f"/api/judges/create?project={project.slug}"
    made = client.post(judges_url, {"kind": "programmatic", "callable_path": CHECKER},
                       format="json")
    assert made.status_code == 201, made.json()
    name = made.json()["name"]
    assert made.json()["annotator"].startswith("ai-")
    bad = client.post(judges_url, {"kind": "programmatic", "callable_path": "os.getcwd"},
                      format="json")
    assert bad.status_code == 400 and "allowed module" in bad.json()["detail"]
    assert any(j["name"] == name
               for j in client.get(f"/api/judges?project={project.slug}").json())
    assert all(j["name"] != name for j in client.get("/api/judges").json())  # not site-wide
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(f"/api/projects/{project.slug}/feedback-jobs/create",
                              {"judge": name, "batch_size": 4}, format="json")
    assert created.status_code == 201, created.json()
    job_id = created.json()["id"]
    assert sent == [{"kwargs": {"job_id": job_id}, "task_id": created.json()["celery_task_id"]}]
    runner.feedback_job_run(job_id=job_id)  # what the worker does
    detail = client.get(f"/api/feedback-jobs/{job_id}").json()
    assert detail["status"] == "succeeded" and detail["progress"]["done"] == 6
    assert detail["labelled"] == 6 and detail["judge"] == name
    assert [j["id"] for j in client.get(f"/api/projects/{project.slug}/feedback-jobs").json()] == [
        job_id
    ]
    snapshot = client.post(f"/api/projects/{project.slug}/ai-exports/create",
                           {"judge": name, "min_probability": 0.9}, format="json")
    assert snapshot.status_code == 201, snapshot.json()
    assert snapshot.json()["format"] == "trl-dpo" and snapshot.json()["rows"] == 6
    bad = client.post(f"/api/projects/{project.slug}/ai-exports/create",
                      {"judge": name, "split": "test"}, format="json")
    assert bad.status_code == 400 and "split" in bad.json()["detail"]


def test_cancel_and_retry(setup):
    project, _, client, _ = setup
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    created = client.post(f"/api/projects/{project.slug}/feedback-jobs/create",
                          {"judge": judge.name}, format="json").json()
    cancelled = client.post(f"/api/feedback-jobs/{created['id']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    retried = client.post(f"/api/feedback-jobs/{created['id']}/retry").json()
    assert retried["status"] == "pending" and retried["celery_task_id"] != created["celery_task_id"]
    again = client.post(f"/api/feedback-jobs/{created['id']}/retry")
    assert again.status_code == 400


def test_critique_job_api_validates(setup, tiny_model_dir):
    project, _, client, _ = setup
    model_version_register(name="tiny", source=str(tiny_model_dir))
    url = f"/api/projects/{project.slug}/critique-jobs/create"
    created = client.post(url, {"model_version": "tiny", "rounds": 2, "seed": 4}, format="json")
    assert created.status_code == 201, created.json()
    job = FeedbackJob.objects.get(pk=created.json()["id"])
    assert (job.kind, job.seed, job.options["rounds"]) == ("critique", 4, 2)
    assert job.total == 12  # both responses of the six pairs
    assert client.get(f"/api/feedback-jobs/{job.pk}/traces").json() == []
    missing = client.post(url, {"model_version": "nope"}, format="json")
    assert missing.status_code == 404


def test_only_owners_reach_project_endpoints(setup):
    project, _, _, _ = setup
    other = APIClient()
    other.force_authenticate(human("someone", project))
    judge = judges.judge_from_spec(spec=DEMO_JUDGE)
    url = f"/api/projects/{project.slug}/feedback-jobs/create"
    assert other.post(url, {"judge": judge.name}, format="json").status_code == 403
    assert other.get(f"/api/projects/{project.slug}/feedback-jobs").status_code == 403
    assert other.post("/api/judges/create", {"kind": "programmatic", "callable_path": CHECKER},
                      format="json").status_code == 403
    assert other.post(f"/api/judges/create?project={project.slug}",
                      {"kind": "programmatic", "callable_path": CHECKER},
                      format="json").status_code == 403
    outsider = APIClient()
    outsider.force_authenticate(judges.judge_from_spec(spec=DEMO_JUDGE).annotator)
    assert outsider.get(f"/api/projects/{project.slug}/feedback-jobs").status_code == 404


def test_schema_lists_the_feedback_endpoints(setup):
    _, _, client, _ = setup
    schema = client.get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    for path in ("/api/constitutions", "/api/judges/create",
                 "/api/projects/{slug}/feedback-jobs/create",
                 "/api/projects/{slug}/judges/{judge}/trust"):
        assert path in paths


def test_commands_label_and_export(setup, capsys):
    project, _, _, _ = setup
    call_command("ai_feedback", project=project.slug, judge=DEMO_JUDGE, here=True)
    assert "succeeded" in capsys.readouterr().out
    assert Judgment.objects.filter(source="ai").count() == 6
    name = Judge.objects.get().name
    call_command("judge_trust", project=project.slug, judge=name, json=True)
    assert json.loads(capsys.readouterr().out)["labels"] == 6
    call_command("ai_feedback_export", project=project.slug, judge=name)
    out = capsys.readouterr().out
    path = Path(out.split(" in ")[-1].strip())
    rows = [json.loads(x) for x in (path / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r["prefloop_probability"] == 1.0 for r in rows)
    with pytest.raises(CommandError, match="no unlabelled comparisons"):
        call_command("ai_feedback", project=project.slug, judge=name, here=True)
    with pytest.raises(CommandError, match="no project"):
        call_command("ai_feedback", project="nope", judge=DEMO_JUDGE)
    assert FeedbackLabel.objects.count() == 6


@pytest.mark.slow
def test_critique_revise_command(setup, tiny_model_dir, settings, capsys):
    settings.GENERATION_BACKEND = "transformers"
    project, _, _, _ = setup
    model_version_register(name="tiny", source=str(tiny_model_dir))
    call_command("critique_revise", project=project.slug, model="tiny", limit=2, max_tokens=8,
                 seed=3, here=True)
    out = capsys.readouterr().out
    assert "critique job" in out and "succeeded" in out
