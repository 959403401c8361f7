"""The owner's constitution pages: the list with its "new constitution" form, and the
edit page that makes a NEW version through the API's service (never edits in place)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from generation.feedback.constitution import DEFAULT_NAME
from generation.feedback.models import Constitution, ConstitutionVersion, Principle
from generation.feedback.services import constitutions as services
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db

PRINCIPLE = {"key": "brevity", "name": "Brevity", "weight": 2.0,
             "critique_request": "Say what is padded.", "revision_request": "Cut the padding.",
             "comparison_question": "Which answer is shorter?"}
LIST_URL = reverse("frontend:constitutions", kwargs={"slug": "cp"})
EDIT_URL = reverse("frontend:constitution-edit", kwargs={"slug": "cp", "name": "house"})


@pytest.fixture
def people():
    names = ("owner", "ann", "reviewer", "stranger")
    return dict(zip(names, (user_make(n) for n in names), strict=True))


@pytest.fixture
def project(people):
    return project_make(slug="cp", owner=people["owner"], annotators=[people["ann"]],
                        reviewers=[people["reviewer"]], pairs=1)


@pytest.fixture
def house(project):
    """A constitution of the project (its owners version it; site-wide ones need staff)."""
    return services.constitution_create(name="house", principles=[PRINCIPLE], note="first",
                                        project=project)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def groups(*principles: dict, extra: int = 1) -> dict:
    """The POST data of the principle groups: one per principle, then ``extra`` empty ones."""
    rows = [*principles, *({} for _ in range(extra))]
    data = {"principle_count": str(len(rows))}
    for i, row in enumerate(rows):
        for field in ("key", "name", "critique_request", "revision_request",
                      "comparison_question", "weight"):
            data[f"p{i}-{field}"] = str(row.get(field, ""))
    return data


def snapshot() -> list[tuple]:
    return sorted(Principle.objects.values_list("version_id", "key", "name", "critique_request",
                                                "weight"))


def test_owner_lists_constitutions_with_their_latest_principles(house, people):
    page = client_for(people["owner"]).get(LIST_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "house" in html and "version 1" in html and "Say what is padded." in html
    assert DEFAULT_NAME in html  # made on first use, as the API does
    assert 'id="constitution-new-form"' in html and "csrfmiddlewaretoken" in html
    assert EDIT_URL in html
    assert f'href="{LIST_URL}" aria-current="page">Constitutions</a>' in html
    assert "<script>" not in html and "style=" not in html
    for name in ("name", "description", "note", "p0-key", "p0-critique_request", "p0-weight"):
        assert f'<label for="id_{name}"' in html, name


def test_owner_saves_a_new_version_and_the_old_one_is_unchanged(house, people):
    client = client_for(people["owner"])
    page = client.get(EDIT_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="constitution-edit-form"' in html and "Saving makes version 2" in html
    assert 'value="brevity"' in html and 'name="p1-key"' in html  # the current one + an empty one
    for name in ("p0-key", "p0-name", "p0-revision_request", "p0-comparison_question", "note"):
        assert f'<label for="id_{name}"' in html, name
    before = snapshot()
    edited = PRINCIPLE | {"critique_request": "Say what is wordy."}
    added = {"key": "clarity", "critique_request": "Say what is unclear.",
             "revision_request": "Make it clear.",
             "comparison_question": "Which is clearer?"}
    response = client.post(EDIT_URL, groups(edited, added) | {"note": "wordier", "save": "1"})
    assert response.status_code == 302 and response["Location"] == LIST_URL
    v1, v2 = ConstitutionVersion.objects.filter(constitution__name="house").order_by("number")
    assert (v1.number, v2.number) == (1, 2) and v2.note == "wordier"
    assert v2.created_by == people["owner"]
    assert [p.key for p in v2.principles.all()] == ["brevity", "clarity"]
    assert v2.principles.get(key="brevity").critique_request == "Say what is wordy."
    assert v2.principles.get(key="clarity").weight == 1.0
    assert [p for p in snapshot() if p[0] == v1.pk] == before  # version 1 untouched
    listed = client.get(LIST_URL).content.decode()
    assert "version 2 of 2" in listed and "Say what is wordy." in listed


def test_clearing_a_group_removes_that_principle(house, people):
    client = client_for(people["owner"])
    keep = {"key": "clarity", "critique_request": "a", "revision_request": "b",
            "comparison_question": "c"}
    cleared = {"weight": 2.0}  # a weight alone still counts as cleared
    response = client.post(EDIT_URL, groups(cleared, keep) | {"save": "1"})
    assert response.status_code == 302
    latest = ConstitutionVersion.objects.get(constitution__name="house", number=2)
    assert [p.key for p in latest.principles.all()] == ["clarity"]


def test_add_another_principle_saves_nothing(house, people):
    response = client_for(people["owner"]).post(EDIT_URL, groups(PRINCIPLE, extra=0) | {"add": "1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'value="brevity"' in html and 'name="p1-key"' in html and "errorlist" not in html
    assert ConstitutionVersion.objects.filter(constitution__name="house").count() == 1


def test_owner_creates_a_new_constitution(project, people):
    client = client_for(people["owner"])
    data = groups(PRINCIPLE) | {"name": "terse", "description": "Short answers.",
                                "note": "start", "save": "1"}
    response = client.post(LIST_URL, data)
    assert response.status_code == 302 and response["Location"] == LIST_URL
    version = ConstitutionVersion.objects.get(constitution__name="terse")
    assert version.number == 1 and version.note == "start"
    assert version.constitution.description == "Short answers."
    assert [p.key for p in version.principles.all()] == ["brevity"]
    assert version.constitution.project == project  # the project's own
    assert "Constitution terse created" in client.get(LIST_URL).content.decode()


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        (EDIT_URL, groups(PRINCIPLE | {"key": "Bad Key!"}), "key must be lower-case"),
        (EDIT_URL, groups(PRINCIPLE), "same as version 1"),
        (EDIT_URL, groups(), "non-empty list of principles"),
        (EDIT_URL, groups(PRINCIPLE | {"revision_request": ""}), "clear all of this principle"),
        (EDIT_URL, groups(PRINCIPLE, PRINCIPLE), "used twice"),
        (LIST_URL, groups(PRINCIPLE) | {"name": "house"}, "already exists"),
        (LIST_URL, groups(PRINCIPLE) | {"name": "Not a slug"}, "errorlist"),
        (LIST_URL, groups(PRINCIPLE | {"weight": "0"}) | {"name": "w"}, "weight must be"),
    ],
)
def test_invalid_input_shows_an_error_and_writes_nothing(house, people, url, data, message):
    counts = (Constitution.objects.count(), ConstitutionVersion.objects.count(),
              Principle.objects.count())
    before = snapshot()
    response = client_for(people["owner"]).post(url, data | {"save": "1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and ('role="alert"' in html or "errorlist" in html)
    after = (Constitution.objects.count(), ConstitutionVersion.objects.count(),
             Principle.objects.count())
    assert after == counts and snapshot() == before


def test_reviewer_reads_but_cannot_post(house, people):
    client = client_for(people["reviewer"])
    listed = client.get(LIST_URL)
    assert listed.status_code == 200
    assert "Say what is padded." in listed.content.decode()
    assert "constitution-new-form" not in listed.content.decode()
    page = client.get(EDIT_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Say what is padded." in html and "constitution-edit-form" not in html
    assert client.post(EDIT_URL, groups(PRINCIPLE | {"name": "x"})).status_code == 403
    assert client.post(LIST_URL, groups(PRINCIPLE) | {"name": "rev"}).status_code == 403
    assert ConstitutionVersion.objects.filter(constitution__name="house").count() == 1
    assert not Constitution.objects.filter(name="rev").exists()


def test_annotators_get_403_and_strangers_404(house, people):
    for who, status in (("ann", 403), ("stranger", 404)):
        client = client_for(people[who])
        assert client.get(LIST_URL).status_code == status, who
        assert client.get(EDIT_URL).status_code == status, who
        assert client.post(EDIT_URL, groups(PRINCIPLE | {"name": "x"})).status_code == status


def test_anonymous_users_are_sent_to_log_in(house):
    assert Client().get(LIST_URL).status_code == 302


def test_unknown_constitution_is_404(project, people):
    url = reverse("frontend:constitution-edit", kwargs={"slug": "cp", "name": "nope"})
    assert client_for(people["owner"]).get(url).status_code == 404


def test_only_staff_version_the_default_constitution(project, people):
    url = reverse("frontend:constitution-edit", kwargs={"slug": "cp", "name": DEFAULT_NAME})
    owner = client_for(people["owner"])
    page = owner.get(url)
    assert page.status_code == 200
    assert "Only staff version the default constitution." in page.content.decode()
    assert "constitution-edit-form" not in page.content.decode()
    assert owner.post(url, groups(PRINCIPLE) | {"save": "1"}).status_code == 403
    people["owner"].is_staff = True
    people["owner"].save()
    assert "constitution-edit-form" in owner.get(url).content.decode()
    assert owner.post(url, groups(PRINCIPLE) | {"save": "1"}).status_code == 302
    assert ConstitutionVersion.objects.filter(constitution__name=DEFAULT_NAME).count() == 2
