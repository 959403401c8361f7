"""The rounds API: who may do what, what a start enqueues, errors as 400 / 404 / 409."""

from __future__ import annotations

import pytest
from django.urls import include, path
from rest_framework.test import APIClient

from annotation.models import Membership
from annotation.services import projects
from generation.models import ModelVersion
from training.rounds.models import Round

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

# This module doubles as the URLconf: the rounds API under /api/.
urlpatterns = [path("api/", include("training.rounds.urls"))]

ROLES = ("owner", "reviewer", "annotator")
READERS, WRITERS = ("owner", "reviewer"), ("owner",)
START = {"policy": "base", "settings": {"rounds": 2, "samples": 2}}


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in (*ROLES, "stranger")}


@pytest.fixture
def project(people):
    project = projects.project_create(slug="api", owner=people["owner"])
    for role in ("reviewer", "annotator"):
        projects.member_set(project=project, user=people[role], role=role)
    ModelVersion.objects.create(name="base", source="/models/base")
    return project


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _expected(who: str, allowed: tuple[str, ...], ok: int) -> int:
    return ok if who in allowed else 404 if who == "stranger" else 403


@pytest.mark.parametrize("who", [*ROLES, "stranger"])
def test_reads_are_for_owners_and_reviewers(people, project, who):
    client = _client(people[who])
    for url in ("/api/projects/api/rounds", "/api/projects/api/rounds/plot"):
        assert client.get(url).status_code == _expected(who, READERS, 200), url


@pytest.mark.parametrize("who", [*ROLES, "stranger"])
def test_only_owners_start_rounds(people, project, who, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _client(people[who]).post("/api/projects/api/rounds", START, format="json")
    assert response.status_code == _expected(who, WRITERS, 201), response.content
    if who != "owner":
        assert not Round.objects.exists() and not callbacks
        return
    body = response.json()
    assert (body["index"], body["status"], body["step"]) == (1, "pending", "generate")
    assert body["policy"] == "base" and body["rounds_remaining"] == 1
    assert body["judge"].startswith("programmatic-demo_capital_score")
    assert len(callbacks) == 1  # the first step goes to the gpu queue after commit
    assert Round.objects.get().celery_task_id


def test_a_round_is_read_resumed_and_cancelled_by_its_owner(people, project):
    owner, reviewer = _client(people["owner"]), _client(people["reviewer"])
    assert owner.post("/api/projects/api/rounds", START, format="json").status_code == 201
    detail = reviewer.get("/api/projects/api/rounds/1")
    assert detail.status_code == 200 and detail.json()["labelling"] == "programmatic"
    assert reviewer.get("/api/projects/api/rounds/9").status_code == 404
    for action in ("resume", "cancel"):
        assert reviewer.post(f"/api/projects/api/rounds/1/{action}").status_code == 403
    assert owner.post("/api/projects/api/rounds/1/resume").json()["status"] == "running"
    second = owner.post("/api/projects/api/rounds", START, format="json")
    assert second.status_code == 409 and "still running" in second.json()["detail"]
    assert owner.post("/api/projects/api/rounds/1/cancel").json()["status"] == "cancelled"
    again = owner.post("/api/projects/api/rounds/1/cancel")  # a finished round: unchanged
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert owner.post("/api/projects/api/rounds/1/resume").status_code == 409


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"policy": "base", "settings": {"bogus": 1}}, "unknown round setting"),
        ({"policy": "nope"}, "no model version named"),
        ({"policy": "base", "settings": {"judge": "programmatic:os.system"}},
         "not under an allowed module"),
        ({"policy": "base", "settings": {"algorithm": "kto", "label_kind": "thumbs"}},
         "binary (thumbs) tasks"),
        ({}, "no policy to start from"),
        ({"policy": "base", "settings": {"hyperparameters": {"lr": 1, "wd": 0}}},
         "unknown hyperparameters ['wd']"),
    ],
)
def test_bad_requests_say_why(people, project, body, message):
    response = _client(people["owner"]).post("/api/projects/api/rounds", body, format="json")
    assert response.status_code in (400, 404) and message in response.json()["detail"]
    assert not Round.objects.exists()


def test_plot_as_png_or_svg(people, project):
    client = _client(people["reviewer"])
    png = client.get("/api/projects/api/rounds/plot")
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    svg = client.get("/api/projects/api/rounds/plot?image=svg")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content


def test_anonymous_users_are_refused(project):
    assert APIClient().get("/api/projects/api/rounds").status_code in (401, 403)


def test_annotators_membership_role_constant_is_the_annotation_one():
    assert Membership.Role.ANNOTATOR == "annotator"
