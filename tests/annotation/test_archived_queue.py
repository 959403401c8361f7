"""An archived project gives out no tasks through the API either (the pages refuse too)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation.models import Assignment
from annotation.services import projects
from annotation.services.assignment import PROJECT_ARCHIVED, task_next_for_annotator
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db


def test_task_next_refuses_an_archived_project():
    owner, ann = user_make("owner"), user_make("ann")
    project = project_make(slug="shelved", owner=owner, annotators=[ann], pairs=2)
    api = APIClient()
    api.force_authenticate(ann)
    projects.project_archive_set(project=project, archived=True)
    refused = api.post("/api/projects/shelved/tasks/next")
    assert refused.status_code == 409 and refused.json()["detail"] == PROJECT_ARCHIVED
    assert task_next_for_annotator(project=project, annotator=ann) is None
    assert not Assignment.objects.exists()
    projects.project_archive_set(project=project, archived=False)
    assert api.post("/api/projects/shelved/tasks/next").status_code == 200
