"""The generation REST API and management commands: registry, jobs, permissions."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.models import Membership
from annotation.services.projects import member_set, project_create
from generation import services, tasks
from generation.models import GenerationJob, ModelVersion
from tests.generation.test_jobs import make_prompts

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(make_user):
    return make_user("owner")


@pytest.fixture
def project(owner):
    project = project_create(slug="gen", owner=owner)
    make_prompts(project)
    return project


@pytest.fixture
def client(owner) -> APIClient:
    c = APIClient()
    c.force_authenticate(owner)
    return c


@pytest.fixture
def enqueued(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(tasks.generation_job_execute, "apply_async", lambda **kw: calls.append(kw))
    return calls


def test_register_list_and_read_models(client, project, tiny_model_dir, tmp_path):
    """A project's owners register its models with ?project=<slug>; they list them with
    the site-wide ones."""
    q = f"?project={project.slug}"
    r = client.post(f"/api/models/register{q}", {"name": "tiny", "source": str(tiny_model_dir)})
    assert r.status_code == 201, r.data
    r = client.post(
        f"/api/models/register{q}",
        {"name": "tiny-r1", "source": str(tiny_model_dir), "parent": "tiny", "round_index": 1},
    )
    assert r.status_code == 201 and r.data["parent"] == "tiny" and r.data["version"] == 1
    r = client.post(f"/api/models/register{q}", {"name": "x", "source": str(tmp_path / "nope")})
    assert r.status_code == 400 and "does not exist" in str(r.data)
    r = client.post(f"/api/models/register{q}", {"name": "hub", "source": "Qwen/Qwen2.5-0.5B"})
    assert r.status_code == 201 and r.data["project"] == project.slug  # hub ids: the workers'
    services.model_version_register(name="site-base", source="org/site-base")  # site-wide
    names = [m["name"] for m in client.get(f"/api/models{q}").data]
    assert sorted(names) == ["hub", "site-base", "tiny", "tiny-r1"]
    assert [m["name"] for m in client.get("/api/models").data] == ["site-base"]
    assert client.get(f"/api/models/tiny-r1{q}").data["source"] == str(tiny_model_dir)
    assert client.get("/api/models/tiny-r1").status_code == 404  # not site-wide
    assert client.get(f"/api/models/none{q}").status_code == 404


def test_only_staff_register_site_wide_models(client, project):
    r = client.post("/api/models/register", {"name": "m", "source": "org/m"})
    assert r.status_code == 403


def test_annotators_cannot_register_models(make_user, project):
    c = APIClient()
    c.force_authenticate(make_user("annotator"))
    assert c.post("/api/models/register", {"name": "m", "source": "org/m"}).status_code == 403
    q = f"?project={project.slug}"
    assert c.post(f"/api/models/register{q}", {"name": "m", "source": "org/m"}).status_code == 404


def test_create_watch_and_cancel_a_job(client, project, tiny_model_dir, enqueued, owner,
                                       django_capture_on_commit_callbacks):
    services.model_version_register(name="tiny", source=str(tiny_model_dir))
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(
            "/api/projects/gen/generation-jobs/create",
            {"model_version": "tiny", "tags": ["even"], "pairing": "all",
             "sampling": {"n": 3, "temperature": 0.8, "max_tokens": 32}},
            format="json",
        )
    assert r.status_code == 201, r.data
    job = GenerationJob.objects.get(pk=r.data["id"])
    assert enqueued == [{"kwargs": {"job_id": job.pk}, "task_id": job.celery_task_id}]
    assert r.data["progress"] == {
        "done": 0, "total": 3, "fraction": 0.0, "elapsed_seconds": 0.0, "output_tokens": 0,
        "tokens_per_second": 0.0, "engine_tokens_per_second": 0.0, "eta_seconds": None,
    }
    assert r.data["sampling"]["n"] == 3 and isinstance(r.data["sampling"]["seed"], int)
    assert job.created_by == owner
    assert client.get(f"/api/generation-jobs/{job.pk}").data["status"] == "pending"
    assert [j["id"] for j in client.get("/api/projects/gen/generation-jobs").data] == [job.pk]
    r = client.post(f"/api/generation-jobs/{job.pk}/cancel")
    assert r.status_code == 200 and r.data["status"] == "cancelled"


def test_job_creation_errors_are_400(client, project, tiny_model_dir, enqueued):
    services.model_version_register(name="tiny", source=str(tiny_model_dir))
    url = "/api/projects/gen/generation-jobs/create"
    r = client.post(url, {"model_version": "tiny", "sampling": {"temperature": -1}}, format="json")
    assert r.status_code == 400 and "temperature" in str(r.data)
    r = client.post(url, {"model_version": "nope"}, format="json")
    assert r.status_code == 404
    assert not enqueued and not GenerationJob.objects.exists()


def test_only_owners_manage_jobs(make_user, project, tiny_model_dir, enqueued):
    services.model_version_register(name="tiny", source=str(tiny_model_dir))
    annotator, stranger = make_user("annotator"), make_user("stranger")
    member_set(project=project, user=annotator, role=Membership.Role.ANNOTATOR)
    body = {"model_version": "tiny", "sampling": {"n": 2}}
    for user, code in ((annotator, 403), (stranger, 404)):
        c = APIClient()
        c.force_authenticate(user)
        assert (
            c.post("/api/projects/gen/generation-jobs/create", body, format="json").status_code
            == code
        )
        assert c.get("/api/projects/gen/generation-jobs").status_code == code


def test_register_model_command(tiny_model_dir, tmp_path):
    call_command("register_model", "tiny", str(tiny_model_dir), "--notes", "tiny")
    call_command(
        "register_model", "tiny-r1", str(tiny_model_dir), "--parent", "tiny", "--round", "1"
    )
    child = ModelVersion.objects.get(name="tiny-r1")
    assert (child.parent.name, child.version, child.round_index) == ("tiny", 1, 1)
    with pytest.raises(CommandError, match="does not exist"):
        call_command("register_model", "bad", str(tmp_path / "nope"))


def test_generate_command_runs_a_job_here(project, tiny_model_dir, settings, capsys):
    settings.GENERATION_BACKEND = "transformers"
    services.model_version_register(name="tiny", source=str(tiny_model_dir))
    call_command("generate", "--project", "gen", "--model", "tiny", "--split", "eval",
                 "--n", "2", "--max-tokens", "8", "--seed", "5", "--here")
    out = capsys.readouterr().out
    job = GenerationJob.objects.get()
    assert job.status == "succeeded" and job.total == 2
    assert f"job {job.pk} succeeded: {job.responses_created} responses" in out
    with pytest.raises(CommandError, match="random pairing needs n >= 2"):
        call_command("generate", "--project", "gen", "--model", "tiny", "--n", "1")
