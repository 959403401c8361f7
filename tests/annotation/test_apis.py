"""REST API: every endpoint refuses the wrong role; payloads hide model identity."""

import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import include, path
from rest_framework.test import APIClient

from annotation.models import Assignment, Judgment, Membership, Task
from generation.models import ModelVersion
from tests.annotation import (
    binary_tasks_build,
    member_add,
    pairwise_tasks_build,
    project_build,
    user_build,
)

pytestmark = pytest.mark.django_db

# This module doubles as a URLconf holding only the core annotation API, so the
# schema test below checks these views and nothing else.
urlpatterns = [path("api/", include("annotation.apis.core_urls"))]

OWNER, REVIEWER, ANNOTATOR = (
    Membership.Role.OWNER,
    Membership.Role.REVIEWER,
    Membership.Role.ANNOTATOR,
)
ALL = (OWNER, REVIEWER, ANNOTATOR)
PROJECT_ENDPOINTS = [  # method, path under /api/projects/demo, roles allowed, body
    ("get", "", ALL, None),
    ("post", "/update", (OWNER,), {"guidelines": "Be kind."}),
    ("get", "/members", (OWNER, REVIEWER), None),
    ("post", "/members/set", (OWNER,), {"username": "someone", "role": "annotator"}),
    ("post", "/tasks/next?kind=pairwise", ALL, None),
    ("get", "/progress", ALL, None),
    ("get", "/stats", (OWNER, REVIEWER), None),
    ("get", "/leaderboard?bootstrap=20", (OWNER, REVIEWER), None),
    ("post", "/overlap/adapt", (OWNER,), {"min_agreement": 0.6}),
]
ASSIGNMENT_ENDPOINTS = [
    ("judgment", {"choice": "left"}),
    ("judgment-and-next", {"choice": "left"}),
    ("feedback", {"thumbs_up": True}),
    ("skip", None),
]


@pytest.fixture
def people(db):
    return {role: user_build(role) for role in (*ALL, "stranger", "someone")}


@pytest.fixture
def project(people):
    project = project_build(owner=people[OWNER], overlap=2, binary_enabled=True)
    member_add(project=project, user=people[REVIEWER], role=REVIEWER)
    member_add(project=project, user=people[ANNOTATOR], role=ANNOTATOR)
    mv = ModelVersion.objects.create(name="secret-model-xyz", source="/models/secret")
    pairwise_tasks_build(project=project, n=3, model_versions=(mv, None))
    binary_tasks_build(project=project, n=1)
    return project


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _call(client, method, url, body):
    return (
        getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
    )


@pytest.mark.parametrize(("method", "suffix", "allowed", "body"), PROJECT_ENDPOINTS)
def test_project_endpoints_refuse_the_wrong_role(project, people, method, suffix, allowed, body):
    url = f"/api/projects/demo{suffix}"
    assert _call(_client(), method, url, body).status_code in (401, 403)
    assert _call(_client(people["stranger"]), method, url, body).status_code == 404
    for role in ALL:
        status = _call(_client(people[role]), method, url, body).status_code
        if role in allowed:
            assert status in (200, 201, 204), (role, status)
        else:
            assert status == 403, (role, status)


@pytest.mark.parametrize(("action", "body"), ASSIGNMENT_ENDPOINTS)
def test_assignment_endpoints_belong_to_their_annotator(project, people, action, body):
    kind = Task.Kind.BINARY if action == "feedback" else Task.Kind.PAIRWISE
    response = _client(people[ANNOTATOR]).post(f"/api/projects/demo/tasks/next?kind={kind}")
    url = f"/api/assignments/{response.json()['assignment_id']}/{action}"
    assert _call(_client(), "post", url, body).status_code in (401, 403)
    for intruder in ("stranger", OWNER, REVIEWER):
        assert _call(_client(people[intruder]), "post", url, body).status_code == 404
    assert _call(_client(people[ANNOTATOR]), "post", url, body).status_code in (200, 201)


def test_project_list_and_create_need_a_login(people, project):
    assert _client().get("/api/projects").status_code in (401, 403)
    assert _client(people["stranger"]).get("/api/projects").json() == []
    listed = _client(people[ANNOTATOR]).get("/api/projects").json()
    assert [(p["slug"], p["my_role"]) for p in listed] == [("demo", ANNOTATOR)]
    body = {"slug": "fresh", "overlap": 2}
    assert _client().post("/api/projects/create", body, format="json").status_code in (401, 403)
    refused = _client(people["stranger"]).post("/api/projects/create", body, format="json")
    assert refused.status_code == 403  # creating projects needs annotation.add_project
    people["stranger"].groups.add(Group.objects.get(name="Project creators"))
    people["stranger"] = type(people["stranger"]).objects.get(pk=people["stranger"].pk)  # perms
    created = _client(people["stranger"]).post("/api/projects/create", body, format="json")
    assert created.status_code == 201 and created.json()["my_role"] == OWNER
    again = _client(people["stranger"]).post("/api/projects/create", body, format="json")
    assert again.status_code == 400


def test_task_payload_never_reveals_the_model(project, people):
    response = _client(people[ANNOTATOR]).post("/api/projects/demo/tasks/next?kind=pairwise")
    payload = response.json()
    assert set(payload) == {
        "assignment_id", "task_id", "kind", "expires_at", "prompt", "left", "right",
        "response", "strength_levels", "allow_tie", "allow_both_bad",
    }
    text = json.dumps(payload)
    for leak in ("secret-model-xyz", "model_version", "sampling", "generated", "source"):
        assert leak not in text
    assignment = Assignment.objects.get(pk=payload["assignment_id"])
    task = assignment.task
    left = task.response_a if assignment.left_is_a else task.response_b
    assert payload["left"] == left.text
    assert payload["prompt"] == task.prompt.messages


def test_submitting_twice_with_one_key_returns_the_same_judgment(project, people):
    client = _client(people[ANNOTATOR])
    assignment_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
    url = f"/api/assignments/{assignment_id}/judgment"
    body = {"choice": "left", "strength": 2, "time_spent_ms": 1234}
    first = client.post(url, body, format="json", headers={"Idempotency-Key": "abc"})
    second = client.post(url, body, format="json", headers={"Idempotency-Key": "abc"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["choice"] == "left" and second.json()["created"] is False
    judgment = Judgment.objects.get()
    assignment = Assignment.objects.get(pk=assignment_id)
    assert judgment.choice == ("a" if assignment.left_is_a else "b")
    assert judgment.idempotency_key.endswith(":abc")


def test_judgment_and_next_stores_the_verdict_and_leases_the_next_task(project, people):
    client = _client(people[ANNOTATOR])
    current = client.post("/api/projects/demo/tasks/next").json()
    seen = [current["task_id"]]
    for _ in range(2):  # three pairwise tasks: two more to lease
        url = f"/api/assignments/{current['assignment_id']}/judgment-and-next"
        body = {"choice": "right", "strength": 2}
        key = {"Idempotency-Key": f"k{current['assignment_id']}"}
        first = client.post(url, body, format="json", headers=key)
        retry = client.post(url, body, format="json", headers=key)  # e.g. a lost answer
        assert (first.status_code, retry.status_code) == (201, 200)
        assert first.json()["judgment"]["id"] == retry.json()["judgment"]["id"]
        assert first.json()["judgment"]["choice"] == "right"
        # The retry gets the lease already handed out, not a second one.
        assert first.json()["next"]["assignment_id"] == retry.json()["next"]["assignment_id"]
        current = first.json()["next"]
        assert current["task_id"] not in seen and current["left"] and current["right"]
        # Same payload, field for field, as tasks/next gives for the lease now held.
        assert client.post("/api/projects/demo/tasks/next").json() == current
        seen.append(current["task_id"])
    last = client.post(f"/api/assignments/{current['assignment_id']}/judgment-and-next",
                       {"choice": "tie"}, format="json")
    assert last.status_code == 201 and last.json()["next"] is None  # nothing left
    assert Judgment.objects.filter(annotator=people[ANNOTATOR]).count() == 3
    assert Assignment.objects.filter(annotator=people[ANNOTATOR], status="leased").count() == 0


def test_judgment_and_next_refuses_bad_input_and_stores_nothing(project, people):
    client = _client(people[ANNOTATOR])
    assignment_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
    url = f"/api/assignments/{assignment_id}/judgment-and-next"
    for body in (
        {"choice": "a"},
        {"choice": "left", "strength": 9},
        {"choice": "left", "time_spent_ms": 2**40},  # beyond the column: 400, not a 500
        {"choice": "left", "time_spent_ms": -1},
    ):
        assert client.post(url, body, format="json").status_code == 400, body
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(pk=assignment_id).status == "leased"


def test_bad_input_is_a_400_and_no_tasks_is_a_204(project, people):
    client = _client(people[ANNOTATOR])
    assignment_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
    url = f"/api/assignments/{assignment_id}/judgment"
    assert client.post(url, {"choice": "a"}, format="json").status_code == 400
    assert client.post(url, {"choice": "left", "strength": 9}, format="json").status_code == 400
    assert client.post(url, {"choice": "left"}, format="json").status_code == 201
    for _ in range(2):
        next_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
        client.post(f"/api/assignments/{next_id}/skip")
    assert client.post("/api/projects/demo/tasks/next").status_code == 204
    assert client.post("/api/projects/demo/tasks/next?kind=sideways").status_code == 400


def test_progress_is_the_callers_own(project, people):
    client = _client(people[ANNOTATOR])
    assignment_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
    client.post(f"/api/assignments/{assignment_id}/judgment", {"choice": "tie"}, format="json")
    mine = client.get("/api/projects/demo/progress").json()
    theirs = _client(people[REVIEWER]).get("/api/projects/demo/progress").json()
    assert (mine["judgments"], theirs["judgments"]) == (1, 0)
    assert mine["project_slots_done"] == 1 and mine["project_tasks"] == 4


def test_owners_configure_projects_and_members(project, people):
    owner = _client(people[OWNER])
    updated = owner.post("/api/projects/demo/update", {"overlap": 3}, format="json")
    assert updated.status_code == 200 and updated.json()["overlap"] == 3
    assert set(Task.objects.values_list("overlap_wanted", flat=True)) == {3}
    too_high = owner.post("/api/projects/demo/update", {"overlap": 9}, format="json")
    assert too_high.status_code == 400  # above max_overlap
    body = {"username": OWNER, "role": "annotator"}
    assert owner.post("/api/projects/demo/members/set", body, format="json").status_code == 400
    body = {"username": "someone", "role": "annotator"}
    assert (
        owner.post("/api/projects/demo/members/set", body, format="json").json()["role"]
        == "annotator"
    )
    promoted = owner.post("/api/projects/demo/members/set", body | {"role": "reviewer"},
                          format="json")
    assert promoted.status_code == 400  # reviewers and owners join by invitation
    unknown = {"username": "nobody", "role": "annotator"}
    refused = owner.post("/api/projects/demo/members/set", unknown, format="json")
    assert refused.status_code == 400 and refused.json() == promoted.json()


def test_reviewers_read_stats_and_the_leaderboard(project, people):
    client = _client(people[ANNOTATOR])
    assignment_id = client.post("/api/projects/demo/tasks/next").json()["assignment_id"]
    client.post(f"/api/assignments/{assignment_id}/judgment", {"choice": "left"}, format="json")
    stats = _client(people[REVIEWER]).get("/api/projects/demo/stats").json()
    assert stats["pairwise"]["n_verdicts"] == 1
    assert stats["position_bias"][0]["left_picks"] == 1
    board = _client(people[REVIEWER]).get("/api/projects/demo/leaderboard").json()
    assert board == []  # one side has no model version: nothing to rank


def test_schema_for_these_views_has_no_warnings(tmp_path):
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--urlconf", __name__,
        "--file", str(tmp_path / "schema.yml"),
    )
    assert "/api/assignments/{assignment_id}/judgment" in (tmp_path / "schema.yml").read_text()
