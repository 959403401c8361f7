"""REST API of training runs: owners start and cancel, reviewers read, others are refused."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotation.models import Membership
from annotation.services.exports import export_snapshot_create
from annotation.services.imports import import_file
from generation.services import model_version_register
from tests.annotation import member_add, project_build, user_build
from training.models import TrainingRun

pytestmark = pytest.mark.django_db

ROW = {"prompt": "What is the capital of Zorvia?", "chosen": "The capital of Zorvia is Dun.",
       "rejected": "I'm not sure, maybe Dun or Vel."}


@pytest.fixture
def setup(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    owner = user_build("owner")
    project = project_build(owner=owner, slug="runs-api")
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    assert import_file(project=project, path=path).imported
    snapshot, _ = export_snapshot_create(project=project, fmt="trl-dpo")
    model_version_register(name="base", source=str(tmp_path / "base"))
    users = {"owner": owner}
    for role in ("reviewer", "annotator"):
        users[role] = user_build(role)
        member_add(project=project, user=users[role], role=getattr(Membership.Role, role.upper()))
    users["outsider"] = user_build("outsider")
    return project, snapshot, users


def _client(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _start(client, project, snapshot):
    return client.post(f"/api/projects/{project.slug}/training-runs",
                       {"algorithm": "dpo", "snapshot": snapshot.content_hash, "policy": "base",
                        "hyperparameters": {"lr": 1e-4}}, format="json")


def test_owner_starts_a_run_which_is_enqueued_after_commit(
    setup, django_capture_on_commit_callbacks
):
    project, snapshot, users = setup
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _start(_client(users["owner"]), project, snapshot)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending" and len(callbacks) == 1
    run = TrainingRun.objects.get()
    assert run.hyperparameters == {"lr": 1e-4} and run.reference == run.policy


@pytest.mark.parametrize("who,status", [(None, 403), ("outsider", 404), ("annotator", 403),
                                        ("reviewer", 403)])
def test_only_owners_start_runs(setup, who, status):
    project, snapshot, users = setup
    response = _start(_client(users.get(who)), project, snapshot)
    assert response.status_code == status
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize("who,status", [("owner", 200), ("reviewer", 200), ("annotator", 403),
                                        ("outsider", 404)])
def test_who_reads_runs(setup, who, status):
    project, snapshot, users = setup
    _start(_client(users["owner"]), project, snapshot)
    run = TrainingRun.objects.get()
    client = _client(users[who])
    assert client.get(f"/api/projects/{project.slug}/training-runs").status_code == status
    detail = client.get(f"/api/projects/{project.slug}/training-runs/{run.pk}")
    assert detail.status_code == status
    if status == 200:
        assert detail.json()["metrics"] == []


def test_bad_requests_are_refused_with_a_reason(setup):
    project, snapshot, users = setup
    client = _client(users["owner"])
    url = f"/api/projects/{project.slug}/training-runs"
    wrong = client.post(url, {"algorithm": "kto", "snapshot": snapshot.content_hash,
                              "policy": "base"}, format="json")
    assert wrong.status_code == 400 and "trl-kto" in wrong.json()["detail"]
    missing = client.post(url, {"algorithm": "dpo", "snapshot": "0" * 64, "policy": "base"},
                          format="json")
    assert missing.status_code == 404


def test_cancel_then_cancel_again_returns_the_cancelled_run(setup):
    project, snapshot, users = setup
    client = _client(users["owner"])
    _start(client, project, snapshot)
    run = TrainingRun.objects.get()
    url = f"/api/projects/{project.slug}/training-runs/{run.pk}/cancel"
    assert client.post(url).json()["status"] == "cancelled"
    again = client.post(url)  # cancelling a finished job changes nothing and never fails
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert _client(users["reviewer"]).post(url).status_code == 403
