"""/api/projects/<slug>/exports: create, list, read, download; owners only."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotation.models import ExportSnapshot, Membership
from annotation.services import content, projects

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_user, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    owner = make_user("owner")
    project = projects.project_create(slug="api-exp", owner=owner)
    annotator = make_user("annotator")
    projects.member_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    prompt, _ = content.prompt_get_or_create(project=project, messages="Q")
    a, _ = content.response_get_or_create(prompt=prompt, text="good", source="generated")
    b, _ = content.response_get_or_create(prompt=prompt, text="bad", source="generated")
    task, _ = content.task_get_or_create(project=project, response_a=a, response_b=b)
    task.judgments.create(annotator=annotator, choice="a")
    return project, owner, annotator, make_user("stranger")


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def urls(slug: str, content_hash: str = "") -> dict[str, str]:
    out = {"list": reverse("annotation:project-exports", kwargs={"slug": slug})}
    if content_hash:
        kwargs = {"slug": slug, "content_hash": content_hash}
        out["detail"] = reverse("annotation:project-export", kwargs=kwargs)
        out["download"] = reverse("annotation:project-export-download", kwargs=kwargs)
    return out


def test_owner_creates_lists_reads_and_downloads(setup):
    project, owner, _, _ = setup
    client = client_for(owner)
    created = client.post(urls(project.slug)["list"], {"format": "trl-dpo"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["rows"] == 1 and body["format"] == "trl-dpo" and body["rules"]["vote"] == "majority"
    again = client.post(urls(project.slug)["list"], {"format": "trl-dpo"}, format="json")
    assert again.status_code == 200 and again.json()["content_hash"] == body["content_hash"]
    listed = client.get(urls(project.slug)["list"]).json()
    assert [s["content_hash"] for s in listed] == [body["content_hash"]]
    links = urls(project.slug, body["content_hash"])
    assert client.get(links["detail"]).json()["id"] == body["id"]
    assert body["download_url"] == links["download"]
    download = client.get(links["download"])
    assert download.status_code == 200
    rows = [json.loads(line) for line in b"".join(download.streaming_content).splitlines()]
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [("Q", "good", "bad")]
    card = client.get(links["download"], {"file": "README.md"})
    assert b"Aggregation rules" in b"".join(card.streaming_content)
    assert client.get(links["download"], {"file": "../../etc/passwd"}).status_code == 404


def test_rules_are_validated(setup):
    project, owner, _, _ = setup
    client = client_for(owner)
    bad = client.post(
        urls(project.slug)["list"], {"format": "trl-kto", "rules": {"ties": "maybe"}}, format="json"
    )
    assert bad.status_code == 400 and "ties" in json.dumps(bad.json())
    unknown = client.post(urls(project.slug)["list"], {"format": "csv"}, format="json")
    assert unknown.status_code == 400
    ok = client.post(
        urls(project.slug)["list"],
        {"format": "trl-kto", "rules": {"min_judgments": 2}},
        format="json",
    )
    assert ok.status_code == 201 and ok.json()["counts"]["dropped"] == {"too_few_votes": 1}
    missing = urls(project.slug, "f" * 64)
    assert client.get(missing["detail"]).status_code == 404


@pytest.mark.parametrize("who", ["anonymous", "stranger", "annotator"])
def test_everyone_but_owners_is_refused(setup, who):
    project, owner, annotator, stranger = setup
    snapshot_hash = (
        client_for(owner)
        .post(urls(project.slug)["list"], {"format": "trl-dpo"}, format="json")
        .json()["content_hash"]
    )
    user = {"anonymous": None, "stranger": stranger, "annotator": annotator}[who]
    client = client_for(user)
    links = urls(project.slug, snapshot_hash)
    refused = (401, 403, 404)
    assert client.post(links["list"], {"format": "trl-kto"}, format="json").status_code in refused
    assert client.get(links["list"]).status_code in refused
    assert client.get(links["detail"]).status_code in refused
    assert client.get(links["download"]).status_code in refused
    assert ExportSnapshot.objects.count() == 1
