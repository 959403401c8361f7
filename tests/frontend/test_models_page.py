"""The models page: the registry the project sees, and registering from a folder."""

from __future__ import annotations

import pytest
from django.test import Client

from generation.models import ModelVersion
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db


def test_registry_and_register_form(tiny_model_dir):
    owner, rev = user_make("owner"), user_make("rev")
    project = project_make(slug="mp", owner=owner, reviewers=[rev])
    base = ModelVersion.objects.create(name="mp-base", source="org/base", project=project)
    ModelVersion.objects.create(name="mp-child", source="org/child", parent=base, version=1,
                                round_index=1, project=project)
    client = Client()
    client.force_login(rev)
    shown = client.get("/p/mp/models/")
    assert shown.status_code == 200 and b"mp-child" in shown.content
    assert "mp-base →".encode() in shown.content
    assert b"Register a model" not in shown.content
    assert client.post("/p/mp/models/", {"name": "x", "source": "org/x"}).status_code == 403
    client.force_login(owner)
    bad = client.post("/p/mp/models/", {"name": "mp-bad", "source": "/nonexistent/folder"})
    assert bad.status_code == 400 and not ModelVersion.objects.filter(name="mp-bad").exists()
    done = client.post("/p/mp/models/", {"name": "mp-tiny", "source": str(tiny_model_dir),
                                          "parent": "mp-base"})
    assert done.status_code == 302, done.content.decode()[:2000]
    made = ModelVersion.objects.get(name="mp-tiny")
    assert made.project == project and made.parent == base
