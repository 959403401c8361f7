"""Constitutions: the default one, versions (never edited in place), validation, sampling, API."""

from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient

from annotation.services.projects import project_create
from generation.feedback import selectors
from generation.feedback.constitution import (
    DEFAULT_NAME,
    DEFAULT_PRINCIPLES,
    ConstitutionError,
    PrincipleSpec,
    principles_sample,
    principles_validate,
)
from generation.feedback.models import ConstitutionVersion
from generation.feedback.services import constitutions
from prefloop.exceptions import ApplicationError, ConflictError

PRINCIPLE = {
    "key": "brevity", "name": "Brevity", "critique_request": "Say what is too long.",
    "revision_request": "Shorten it.", "comparison_question": "Which answer is shorter?",
}


def test_default_principles_cover_the_four_values_with_all_three_texts():
    assert [p.key for p in DEFAULT_PRINCIPLES] == [
        "helpfulness", "honesty", "harmlessness", "concision",
    ]
    for p in DEFAULT_PRINCIPLES:
        assert p.critique_request and p.revision_request and p.comparison_question.endswith("?")
    assert principles_validate([p.as_dict() for p in DEFAULT_PRINCIPLES]) == list(
        DEFAULT_PRINCIPLES
    )


@pytest.mark.parametrize(
    "principles, message",
    [
        ([], "non-empty list"),
        ([{**PRINCIPLE, "key": "Bad Key"}], "key must be"),
        ([PRINCIPLE, PRINCIPLE], "used twice"),
        ([{**PRINCIPLE, "revision_request": " "}], "revision_request must be non-empty"),
        ([{**PRINCIPLE, "weight": 0}], "weight must be"),
        ([{**PRINCIPLE, "colour": "red"}], "unknown field"),
    ],
)
def test_invalid_principles_are_refused_with_the_reason(principles, message):
    with pytest.raises(ConstitutionError, match=message):
        principles_validate(principles)


def test_sampling_is_seeded_per_item_distinct_and_weighted():
    draw = principles_sample(DEFAULT_PRINCIPLES, k=3, seed=5, key="pair:9")
    assert draw == principles_sample(DEFAULT_PRINCIPLES, k=3, seed=5, key="pair:9")
    assert len({p.key for p in draw}) == 3
    heavy = [PrincipleSpec(**{**p.as_dict(), "weight": 100.0 if p.key == "honesty" else 1.0})
             for p in DEFAULT_PRINCIPLES]
    counts = Counter(
        principles_sample(heavy, k=1, seed=1, key=str(i))[0].key for i in range(300)
    )
    assert counts["honesty"] > 250
    with pytest.raises(ConstitutionError):
        principles_sample(DEFAULT_PRINCIPLES, k=5, seed=0, key="x")


@pytest.mark.django_db
def test_default_constitution_is_made_once():
    first = constitutions.constitution_default_get_or_create()
    assert first == constitutions.constitution_default_get_or_create()
    assert (first.constitution.name, first.number) == (DEFAULT_NAME, 1)
    assert selectors.principle_specs(version=first) == list(DEFAULT_PRINCIPLES)


@pytest.mark.django_db
def test_an_edit_is_a_new_version_and_old_versions_keep_their_principles():
    v1 = constitutions.constitution_create(name="short", principles=[PRINCIPLE])
    changed = {**PRINCIPLE, "comparison_question": "Which answer is briefer?"}
    v2 = constitutions.constitution_version_create(
        constitution=v1.constitution, principles=[changed, {**PRINCIPLE, "key": "b2"}],
        note="reworded",
    )
    assert (v1.number, v2.number) == (1, 2)
    (old,) = selectors.principle_specs(version=v1)
    assert old.comparison_question == "Which answer is shorter?"
    assert [p.key for p in selectors.principle_specs(version=v2)] == ["brevity", "b2"]
    assert selectors.constitution_version_get(name="short") == v2
    with pytest.raises(ApplicationError, match="same as version 2"):
        constitutions.constitution_version_create(
            constitution=v1.constitution, principles=[changed, {**PRINCIPLE, "key": "b2"}]
        )
    with pytest.raises(ConflictError):
        constitutions.constitution_create(name="short", principles=[PRINCIPLE])
    assert ConstitutionVersion.objects.filter(constitution__name="short").count() == 2


@pytest.mark.django_db
def test_api_owners_create_and_version_constitutions_others_read(make_user):
    owner, annotator, staff = make_user("owner"), make_user("ann"), make_user("staff")
    staff.is_staff = True
    staff.save()
    project_create(slug="p", owner=owner)
    client = APIClient()
    client.force_authenticate(annotator)
    names = [row["constitution"] for row in client.get("/api/constitutions").json()]
    assert DEFAULT_NAME in names
    body = {"name": "mine", "principles": [PRINCIPLE]}
    assert client.post("/api/constitutions/create", body, format="json").status_code == 403
    assert client.post("/api/constitutions/create?project=p", body,
                       format="json").status_code == 404
    client.force_authenticate(owner)
    assert client.post("/api/constitutions/create", body, format="json").status_code == 403
    created = client.post("/api/constitutions/create?project=p", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["principles"][0]["key"] == "brevity"
    bad = client.post("/api/constitutions/create?project=p",
                      {"name": "x", "principles": [{"key": "k"}]}, format="json")
    assert bad.status_code == 400 and "critique_request" in bad.json()["detail"]
    new = {"principles": [{**PRINCIPLE, "weight": 2}], "note": "heavier"}
    response = client.post("/api/constitutions/mine/versions/create?project=p", new,
                           format="json")
    assert response.status_code == 201 and response.json()["number"] == 2
    first = client.get("/api/constitutions/mine/versions/1?project=p").json()
    assert first["principles"][0]["weight"] == 1
    assert client.get("/api/constitutions/mine").status_code == 404  # not site-wide
    default = f"/api/constitutions/{DEFAULT_NAME}/versions/create"
    assert client.post(default, new, format="json").status_code == 403
    client.force_authenticate(staff)
    assert client.post(default, new, format="json").status_code == 201
