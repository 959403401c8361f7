"""The owner console's project and people pages through Django's test client: who may
create a project, every setting saved from the form, the guidelines preview, archive,
members added / re-roled / removed, invitations, and a person's own API token."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.authtoken.models import Token

from annotation.models import Invitation, Membership, Project
from annotation.services import invitations
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db

SETTINGS = {"name": "Renamed", "guidelines": "# Judge\n\nBe **kind**.", "pairwise_enabled": "on",
            "binary_enabled": "on", "overlap": "2", "max_overlap": "4", "strength_levels": "4",
            "allow_tie": "on", "lease_seconds": "600", "exclude_own_responses": "on",
            "allow_remote_images": "on", "auto_round_threshold": "50"}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world():
    owner, ann, rev, stranger = (user_make(n) for n in ("owner", "ann", "rev", "stranger"))
    project = project_make(slug="console", owner=owner, annotators=[ann], reviewers=[rev],
                           pairs=2, thumbs=0)
    return {"owner": owner, "ann": ann, "rev": rev, "stranger": stranger, "project": project}


def test_only_users_with_the_permission_create_projects(world):
    stranger = world["stranger"]
    page = client_for(stranger).get("/projects/new")
    assert page.status_code == 403 and b"annotation.add_project" in page.content
    stranger.user_permissions.add(Permission.objects.get(codename="add_project"))
    client = client_for(stranger)
    assert b"New project" in client.get("/").content
    data = SETTINGS | {"slug": "fresh", "name": ""}
    response = client.post("/projects/new", data)
    assert response.status_code == 302 and response["Location"] == "/p/fresh/people/"
    project = Project.objects.get(slug="fresh")
    assert project.name == "fresh" and project.overlap == 2 and project.binary_enabled
    assert Membership.objects.get(project=project, user=stranger).role == "owner"
    again = client.post("/projects/new", data)
    assert again.status_code == 400 and b"not available" in again.content


def test_every_setting_is_saved_from_the_form(world):
    client = client_for(world["owner"])
    assert client.get("/p/console/settings/").status_code == 200
    response = client.post("/p/console/settings/", SETTINGS)
    assert response.status_code == 302
    project = Project.objects.get(slug="console")
    assert (project.name, project.overlap, project.max_overlap, project.strength_levels,
            project.lease_seconds, project.auto_round_threshold) == ("Renamed", 2, 4, 4, 600, 50)
    assert project.binary_enabled and project.allow_tie and project.allow_remote_images
    assert not project.allow_both_bad and project.guidelines.startswith("# Judge")
    unchecked = {k: v for k, v in SETTINGS.items() if k not in ("exclude_own_responses",)}
    client.post("/p/console/settings/", unchecked | {"auto_round_threshold": ""})
    project.refresh_from_db()
    assert not project.exclude_own_responses and project.auto_round_threshold is None


def test_a_refused_setting_is_shown_and_nothing_is_saved(world):
    client = client_for(world["owner"])
    bad = SETTINGS | {"overlap": "5", "max_overlap": "3"}
    response = client.post("/p/console/settings/", bad)
    assert response.status_code == 400 and b"cannot exceed" in response.content
    none = {k: v for k, v in SETTINGS.items() if not k.endswith("_enabled")}
    assert b"at least one task kind" in client.post("/p/console/settings/", none).content
    assert Project.objects.get(slug="console").name != "Renamed"


def test_guidelines_preview_renders_sanitised_markdown(world):
    client = client_for(world["owner"])
    text = "**bold** <script>alert(1)</script>"
    fragment = client.post("/projects/preview", {"guidelines": text}).content.decode()
    assert "<strong>bold</strong>" in fragment and "<script>" not in fragment
    page = client.post("/p/console/settings/", SETTINGS | {"guidelines": text, "preview": "1"})
    assert page.status_code == 200 and b"<strong>bold</strong>" in page.content
    assert Project.objects.get(slug="console").guidelines != text  # a preview saves nothing


def test_reviewers_and_annotators_cannot_change_settings(world):
    for who, status in (("rev", 403), ("ann", 403), ("stranger", 404)):
        client = client_for(world[who])
        assert client.post("/p/console/settings/", SETTINGS).status_code == status
        assert client.post("/p/console/archive", {"archived": "1"}).status_code == status
    assert Project.objects.get(slug="console").name != "Renamed"


def test_archive_hides_the_project_from_annotators_and_restore_brings_it_back(world):
    owner = client_for(world["owner"])
    assert owner.post("/p/console/archive", {"archived": "1"}).status_code == 302
    assert Project.objects.get(slug="console").archived_at is not None
    assert b"console" not in client_for(world["ann"]).get("/").content.lower()
    assert b"archived" in owner.get("/").content
    page = client_for(world["ann"]).get("/p/console/pairwise/").content
    assert b"This project is archived" in page and b"data-task-form" not in page
    owner.post("/p/console/archive", {"archived": "0"})
    assert Project.objects.get(slug="console").archived_at is None
    assert b"/p/console/pairwise/" in client_for(world["ann"]).get("/").content


def test_people_page_lists_members_with_activity(world):
    page = client_for(world["rev"]).get("/p/console/people/")
    html = page.content.decode()
    assert page.status_code == 200 and "members-table" in html
    assert all(n in html for n in ("owner", "ann", "rev")) and "Set role" not in html
    assert client_for(world["ann"]).get("/p/console/people/").status_code == 403
    assert client_for(world["stranger"]).get("/p/console/people/").status_code == 404


def test_owner_adds_changes_and_removes_members(world):
    client = client_for(world["owner"])
    stranger = world["stranger"]
    added = client.post("/p/console/people/", {"add-username": "stranger", "add-role": "annotator"})
    assert added.status_code == 302
    assert Membership.objects.get(project=world["project"], user=stranger).role == "annotator"
    raised = client.post(f"/p/console/people/{stranger.pk}/role", {"role": "owner"}, follow=True)
    assert b"invitation" in raised.content  # owners join by invitation only
    client.post(f"/p/console/people/{stranger.pk}/remove")
    assert not Membership.objects.filter(project=world["project"], user=stranger).exists()
    unknown = client.post("/p/console/people/", {"add-username": "nobody", "add-role": "annotator"})
    assert unknown.status_code == 400
    last = client.post(f"/p/console/people/{world['owner'].pk}/remove", follow=True)
    assert b"at least one owner" in last.content


def test_an_invitation_is_accepted_on_the_profile_page(world):
    owner = client_for(world["owner"])
    owner.post("/p/console/people/", {"invite-username": "stranger", "invite-role": "reviewer"})
    invitation = Invitation.objects.get(username="stranger")
    stranger = client_for(world["stranger"])
    assert b"Accept" in stranger.get("/me/").content
    accept = f"/me/invitations/{invitation.token}/accept"
    assert client_for(world["ann"]).post(accept).status_code == 404  # not theirs
    assert stranger.post(accept).status_code == 302
    joined = Membership.objects.get(project=world["project"], user=world["stranger"])
    assert joined.role == "reviewer"


def test_declined_invitation_makes_no_member(world):
    invitation = invitations.invitation_create(project=world["project"], inviter=world["owner"],
                                               username="stranger", role="owner")
    client_for(world["stranger"]).post(f"/me/invitations/{invitation.token}/decline")
    assert not Membership.objects.filter(user=world["stranger"]).exists()


def test_profile_rotates_and_revokes_the_token(world):
    client = client_for(world["ann"])
    assert b"no API token" in client.get("/me/").content
    first = client.post("/me/", {"action": "rotate"})
    key = Token.objects.get(user=world["ann"]).key
    assert key.encode() in first.content
    client.post("/me/", {"action": "rotate"})
    assert Token.objects.get(user=world["ann"]).key != key
    client.post("/me/", {"action": "revoke"})
    assert not Token.objects.filter(user=world["ann"]).exists()
    assert client.post("/me/", {"action": "steal"}).status_code == 400
