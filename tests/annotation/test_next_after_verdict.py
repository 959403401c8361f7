"""judgment-and-next answers what happened: a stored verdict is never answered with an error.

Issue 14, finding 7: an annotator leased a task, the owner then disabled pairwise
tasks, and the submission stored the verdict but answered 400 (with an enum repr in
the message). Now the verdict is answered as stored, ``next`` is null and
``next_detail`` says why in plain words.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation.models import Judgment, Membership
from annotation.services import projects
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    owner, annotator = user_build("owner"), user_build("annotator")
    project = project_build(owner=owner, overlap=1, binary_enabled=True)
    member_add(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    pairwise_tasks_build(project=project, n=3)
    client = APIClient()
    client.force_authenticate(annotator)
    return project, client


def test_verdict_stored_after_the_kind_was_disabled_is_answered_as_stored(world):
    project, client = world
    lease = client.post("/api/projects/demo/tasks/next").json()
    projects.project_update(project=project, data={"pairwise_enabled": False})
    answer = client.post(
        f"/api/assignments/{lease['assignment_id']}/judgment-and-next",
        {"choice": "left"}, format="json", headers={"Idempotency-Key": "k1"},
    )
    assert answer.status_code == 201, answer.content
    body = answer.json()
    stored = Judgment.objects.get()
    assert body["judgment"]["id"] == stored.pk and body["judgment"]["created"] is True
    assert body["next"] is None
    assert body["next_detail"] == "Pairwise tasks are not enabled in this project."
    retry = client.post(
        f"/api/assignments/{lease['assignment_id']}/judgment-and-next",
        {"choice": "left"}, format="json", headers={"Idempotency-Key": "k1"},
    )
    assert retry.status_code == 200 and retry.json()["judgment"]["id"] == stored.pk
    assert Judgment.objects.count() == 1


def test_next_detail_is_null_with_a_task_and_says_so_when_none_is_left(world):
    _, client = world
    current = client.post("/api/projects/demo/tasks/next").json()
    for expected_next in (True, True, False):
        url = f"/api/assignments/{current['assignment_id']}/judgment-and-next"
        body = client.post(url, {"choice": "right"}, format="json").json()
        if expected_next:
            assert body["next"] is not None and body["next_detail"] is None
            current = body["next"]
        else:
            assert body["next"] is None
            assert body["next_detail"] == "No task is left for you in this project right now."


def test_a_disabled_kind_is_refused_in_plain_words(world):
    project, client = world
    projects.project_update(project=project, data={"pairwise_enabled": False})
    answer = client.post("/api/projects/demo/tasks/next?kind=pairwise")
    assert answer.status_code == 400
    text = answer.content.decode()
    assert "Pairwise tasks are not enabled in this project." in text
    assert "Kind." not in text and "<" not in text, text
