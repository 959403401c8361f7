"""Issue 14, findings 1-5: one project can never touch another's objects outside its
own tables (constitutions, models, judges, run outputs, snapshots), and membership
needs consent. Each test failed on the code before the fix; they run on SQLite and,
with ``DATABASE_URL``, on PostgreSQL.

The seeded world (``access_world``): project ``matrix`` (owner ``mx-owner``) and
``elsewhere`` (owner ``mx-other-owner``), each with a model version, a constitution and
a judge of its own, export snapshots, and site-wide base models.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotation.models import Membership
from annotation.services.exports import export_snapshot_file
from generation.feedback.models import ConstitutionVersion, Judge
from generation.models import ModelVersion
from tests.annotation import project_build
from tests.security.access_world import OTHER_SLUG, PRINCIPLE, SLUG, world_build
from training.models import TrainingRun
from training.services import training_run_create

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(client: Client, url: str, body: dict | None = None):
    return client.post(url, body or {}, content_type="application/json")


# --- 1. Another tenant's constitution cannot be rewritten -------------------------------


def test_1_an_owner_cannot_version_another_projects_constitution():
    w = world_build()
    intruder = _client(w.users["other_owner"])  # owner of "elsewhere"
    target = w.ref("own_constitution")  # mx-rules, owned by "matrix"
    versions = ConstitutionVersion.objects.filter(constitution__name=target).count()
    body = {"principles": [PRINCIPLE | {"name": "Poisoned"}]}
    for query in ("", f"?project={OTHER_SLUG}", f"?project={SLUG}"):
        url = f"/api/constitutions/{target}/versions/create{query}"
        assert _post(intruder, url, body).status_code in (403, 404), query
    page = intruder.post(f"/p/{OTHER_SLUG}/constitutions/{target}/edit",
                         {"note": "x", "form-0-key": "p"})
    assert page.status_code == 404
    assert ConstitutionVersion.objects.filter(constitution__name=target).count() == versions


def test_1_only_staff_version_a_site_wide_constitution():
    w = world_build()
    site_wide = _client(w.users["other_owner"])
    body = {"name": "shared", "principles": [PRINCIPLE]}
    assert _post(site_wide, "/api/constitutions/create", body).status_code == 403
    staff = get_user_model().objects.create_user("mx-staff", is_staff=True)
    assert _post(_client(staff), "/api/constitutions/create", body).status_code == 201
    again = {"principles": [PRINCIPLE | {"name": "Changed"}]}
    url = "/api/constitutions/shared/versions/create"
    assert _post(site_wide, url, again).status_code == 403
    assert _post(_client(w.users["owner"]), url, again).status_code == 403
    assert ConstitutionVersion.objects.filter(constitution__name="shared").count() == 1


def test_1_the_owner_versions_their_own_constitution():
    w = world_build()
    url = f"/api/constitutions/{w.ref('own_constitution')}/versions/create?project={SLUG}"
    made = _post(_client(w.users["owner"]), url,
                 {"principles": [PRINCIPLE | {"name": "Honest v2"}]})
    assert made.status_code == 201 and made.json()["number"] == 2


# --- 2. The registry and judges do not leak -----------------------------------------------


def _annotator_with_own_project(w):
    """The matrix's annotator, who owns a project of their own (created by staff)."""
    project_build(owner=w.users["annotator"], slug="annotators-own")
    return _client(w.users["annotator"])


def test_2_an_owner_elsewhere_sees_only_site_wide_models_and_judges():
    w = world_build()
    client = _annotator_with_own_project(w)
    private, judge = w.ref("private_model"), w.ref("own_judge")
    for url in ("/api/models", "/api/models?project=annotators-own", "/api/judges",
                "/api/judges?project=annotators-own"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert private not in response.content.decode() and judge not in response.content.decode()
    assert client.get(f"/api/models/{private}").status_code == 404
    assert client.get(f"/api/models/{private}?project=annotators-own").status_code == 404
    assert client.get(f"/api/models/{private}?project={SLUG}").status_code == 403  # annotator
    assert client.get(f"/api/models?project={SLUG}").status_code == 403


def test_2_registering_a_site_wide_model_needs_staff():
    w = world_build()
    client = _annotator_with_own_project(w)
    body = {"name": "squat", "source": "org/squat"}
    assert _post(client, "/api/models/register", body).status_code == 403
    assert _post(client, "/api/models/register?project=annotators-own", body).status_code == 201
    assert ModelVersion.objects.get(name="squat").project.slug == "annotators-own"


def test_2_the_rounds_form_lists_only_models_the_project_sees():
    w = world_build()
    html = _client(w.users["owner"]).get(f"/p/{SLUG}/rounds/").content.decode()
    assert w.ref("private_model") in html and "mx-base" in html
    assert w.ref("other_private_model") not in html


# --- 3. The predictable run output name is reserved -----------------------------------------


def _run(w, **options) -> TrainingRun:
    from annotation.selectors.exports import export_snapshot_get

    project = Membership.objects.get(user=w.users["owner"], project__slug=SLUG).project
    return training_run_create(
        project=project, algorithm="dpo", enqueue=False,
        snapshot=export_snapshot_get(content_hash=w.ref("export"), project=project),
        policy=ModelVersion.objects.get(name="mx-base", project=None), **options,
    )


def test_3_a_runs_output_name_cannot_be_registered_first():
    w = world_build()
    run = _run(w)
    body = {"name": run.output_name, "source": "org/squatted"}
    registered = _post(_client(w.users["owner"]), f"/api/models/register?project={SLUG}", body)
    assert registered.status_code == 400 and "reserved" in registered.content.decode()
    assert not ModelVersion.objects.filter(name=run.output_name).exists()


def test_3_run_creation_checks_the_output_name_up_front():
    w = world_build()
    owner = _client(w.users["owner"])
    body = {"algorithm": "dpo", "snapshot": w.ref("export"), "policy": "mx-base",
            "output_name": w.ref("private_model")}
    runs = TrainingRun.objects.count()
    taken = _post(owner, f"/api/projects/{SLUG}/training-runs", body)
    assert taken.status_code == 409
    fresh = _post(owner, f"/api/projects/{SLUG}/training-runs", body | {"output_name": "mine"})
    assert fresh.status_code == 201
    again = _post(owner, f"/api/projects/{SLUG}/training-runs", body | {"output_name": "mine"})
    assert again.status_code == 409
    assert TrainingRun.objects.count() == runs + 1


# --- 4. eval_path must be one of the project's own snapshots -----------------------------


def test_4_eval_path_of_another_projects_export_is_refused():
    from annotation.selectors.exports import export_snapshot_get

    w = world_build()
    foreign = export_snapshot_file(snapshot=export_snapshot_get(content_hash=w.ref("other_export")))
    own = export_snapshot_file(snapshot=export_snapshot_get(content_hash=w.ref("export")))
    owner = _client(w.users["owner"])
    body = {"algorithm": "dpo", "snapshot": w.ref("export"), "policy": "mx-base"}
    runs = TrainingRun.objects.count()
    for path in (str(foreign), str(foreign.parent / "card.md"), str(own.parent / "manifest.json")):
        refused = _post(owner, f"/api/projects/{SLUG}/training-runs",
                        body | {"hyperparameters": {"eval_path": path}})
        assert refused.status_code == 404, path
    assert TrainingRun.objects.count() == runs
    accepted = _post(owner, f"/api/projects/{SLUG}/training-runs",
                     body | {"hyperparameters": {"eval_path": str(own)}})
    assert accepted.status_code == 201


# --- 5. Membership needs consent; no enumeration -----------------------------------------------


def test_5_an_owner_cannot_make_someone_owner_or_reviewer_without_consent():
    w = world_build()
    owner = _client(w.users["owner"])
    url = f"/api/projects/{SLUG}/members/set"
    for role in ("owner", "reviewer"):
        refused = _post(owner, url, {"username": "mx-outsider", "role": role})
        assert refused.status_code == 400, role
    assert not Membership.objects.filter(user=w.users["outsider"], project__slug=SLUG).exists()
    assert _post(owner, url, {"username": "mx-outsider", "role": "annotator"}).status_code == 200


def test_5_a_superuser_is_never_silently_made_a_member():
    w = world_build()
    get_user_model().objects.create_superuser("mx-root", password=None)
    owner = _client(w.users["owner"])
    refused = _post(owner, f"/api/projects/{SLUG}/members/set",
                    {"username": "mx-root", "role": "annotator"})
    unknown = _post(owner, f"/api/projects/{SLUG}/members/set",
                    {"username": "mx-nobody", "role": "annotator"})
    assert refused.status_code == unknown.status_code == 400
    assert refused.json() == unknown.json()  # existence of the account is not revealed
    assert "mx-nobody" not in unknown.content.decode()
    assert not Membership.objects.filter(user__username="mx-root").exists()


def test_5_an_invitation_is_accepted_only_by_its_addressee():
    w = world_build()
    owner = _client(w.users["owner"])
    made = _post(owner, f"/api/projects/{SLUG}/invitations/create",
                 {"username": "mx-other-owner", "role": "reviewer"})
    ghost = _post(owner, f"/api/projects/{SLUG}/invitations/create",
                  {"username": "mx-nobody", "role": "reviewer"})
    assert made.status_code == ghost.status_code == 201  # the same for an unknown username
    token = made.json()["token"]
    stranger = _client(w.users["outsider"])
    assert _post(stranger, f"/api/invitations/{token}/accept").status_code == 404
    invitee = _client(w.users["other_owner"])
    assert [i["project"] for i in invitee.get("/api/me/invitations").json()] == [SLUG]
    accepted = _post(invitee, f"/api/invitations/{token}/accept")
    assert accepted.status_code == 200 and accepted.json()["role"] == "reviewer"
    membership = Membership.objects.get(user=w.users["other_owner"], project__slug=SLUG)
    assert membership.role == "reviewer"
    assert _post(invitee, f"/api/invitations/{token}/accept").status_code == 404  # used


def test_5_declining_makes_no_member():
    w = world_build()
    outsider = _client(w.users["outsider"])
    token = w.ref("invitation")
    assert _post(outsider, f"/api/invitations/{token}/decline").status_code == 200
    assert _post(outsider, f"/api/invitations/{token}/accept").status_code == 404
    assert not Membership.objects.filter(user=w.users["outsider"], project__slug=SLUG).exists()


def test_5_project_creation_needs_the_permission_and_slugs_are_not_revealed(settings):
    w = world_build()
    stranger = _client(w.users["outsider"])
    refused = _post(stranger, "/api/projects/create", {"slug": SLUG})
    assert refused.status_code == 403 and SLUG not in refused.content.decode()
    assert "exists" not in refused.content.decode()
    creator = _client(w.users["owner"])  # in the "Project creators" group
    taken = _post(creator, "/api/projects/create", {"slug": OTHER_SLUG})
    reserved = _post(creator, "/api/projects/create", {"slug": "create"})
    assert taken.status_code == reserved.status_code == 400
    assert taken.json() == reserved.json()  # taken and reserved read the same
    assert _post(creator, "/api/projects/create", {"slug": "fresh"}).status_code == 201
    settings.PREFLOOP_OPEN_PROJECT_CREATION = True
    assert _post(stranger, "/api/projects/create", {"slug": "open"}).status_code == 201


def test_5_a_projects_judge_is_not_usable_by_another_project():
    w = world_build()
    intruder = _client(w.users["other_owner"])
    foreign_judge = w.ref("own_judge")
    response = _post(intruder, f"/api/projects/{OTHER_SLUG}/feedback-jobs/create",
                     {"judge": foreign_judge})
    assert response.status_code == 404
    trust = intruder.get(f"/api/projects/{OTHER_SLUG}/judges/{foreign_judge}/trust")
    assert trust.status_code == 404
    assert Judge.objects.get(name=foreign_judge).project.slug == SLUG
