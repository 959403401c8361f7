"""POST /api/projects/<slug>/imports: owners only; the report comes back."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import Membership, Prompt
from annotation.services import projects

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_user):
    owner = make_user("owner")
    project = projects.project_create(slug="api-imp", owner=owner)
    annotator = make_user("annotator")
    projects.member_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    return project, owner, annotator, make_user("stranger")


def upload(name: str, rows: list) -> SimpleUploadedFile:
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    return SimpleUploadedFile(name, body, content_type="application/octet-stream")


def post(client: APIClient, slug: str, file, **fields):
    url = reverse("annotation:project-import", kwargs={"slug": slug})
    return client.post(url, {"file": file, **fields}, format="multipart")


def test_owner_imports_and_gets_the_report(setup):
    project, owner, _, _ = setup
    client = APIClient()
    client.force_authenticate(owner)
    response = post(client, project.slug, upload("p.jsonl", [{"prompt": "Q1"}, {"prompt": "Q2"}]))
    assert response.status_code == 201, response.content
    assert response.json()["created"]["prompts"] == 2
    assert response.json()["error_count"] == 0
    again = post(client, project.slug, upload("p.jsonl", [{"prompt": "Q1"}, {"prompt": "Q2"}]))
    assert again.json()["existing"]["prompts"] == 2 and Prompt.objects.count() == 2


def test_bad_file_is_rejected_with_every_bad_line_unless_partial(setup):
    project, owner, _, _ = setup
    client = APIClient()
    client.force_authenticate(owner)
    rows = [{"prompt": "ok"}, {"prompt": 1}, {"prompt": ""}]
    response = post(client, project.slug, upload("p.jsonl", rows))
    assert response.status_code == 400
    body = response.json()
    assert [e["line"] for e in body["errors"]] == [2, 3] and "nothing was imported" in body[
        "detail"
    ]
    assert Prompt.objects.count() == 0
    response = post(client, project.slug, upload("p.jsonl", rows), partial="true")
    assert response.status_code == 201 and response.json()["rows_imported"] == 1


def test_csv_upload_and_explicit_format(setup):
    project, owner, _, _ = setup
    client = APIClient()
    client.force_authenticate(owner)
    body = b"prompt,completion,label\r\nQ,A,true\r\nQ,B,false\r\n"
    file = SimpleUploadedFile("upload.txt", body)
    response = post(client, project.slug, file, format="csv")
    assert response.status_code == 201, response.content
    assert response.json()["created"]["feedback"] == 2


def test_oversize_upload_is_413(setup, settings):
    project, owner, _, _ = setup
    settings.PREFLOOP_MAX_IMPORT_BYTES = 10
    client = APIClient()
    client.force_authenticate(owner)
    response = post(client, project.slug, upload("p.jsonl", [{"prompt": "a long prompt"}]))
    assert response.status_code == 413 and "PREFLOOP_MAX_IMPORT_BYTES" in response.json()["detail"]


def test_unreadable_file_is_400_with_detail(setup):
    project, owner, _, _ = setup
    client = APIClient()
    client.force_authenticate(owner)
    response = post(client, project.slug, SimpleUploadedFile("e.jsonl", b"\n"))
    assert response.status_code == 400 and "empty" in response.json()["detail"]


@pytest.mark.parametrize("who", ["anonymous", "stranger", "annotator"])
def test_everyone_but_owners_is_refused(setup, who):
    project, _, annotator, stranger = setup
    client = APIClient()
    if who != "anonymous":
        client.force_authenticate({"stranger": stranger, "annotator": annotator}[who])
    response = post(client, project.slug, upload("p.jsonl", [{"prompt": "Q"}]))
    assert response.status_code in (401, 403, 404)
    assert Prompt.objects.count() == 0
