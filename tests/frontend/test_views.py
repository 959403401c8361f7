"""The pages through Django's test client: who may open what, CSRF, the security
headers, and the left/right bookkeeping of the annotation loop (no browser)."""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation.models import Assignment, Feedback, Judgment, Membership
from frontend.views.annotate import FRAGMENT_HEADER
from generation.models import GenerationJob, ModelVersion
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db

FRAGMENT = {f"HTTP_{FRAGMENT_HEADER.upper().replace('-', '_')}": "1"}
OWNER_PAGES = ("dashboard", "jobs", "jobs-live", "leaderboard", "rounds")
CONFIGURER_PAGES = ("import", "export")


@pytest.fixture
def people():
    names = ("owner", "ann", "reviewer", "stranger")
    return dict(zip(names, (user_make(n) for n in names), strict=True))


@pytest.fixture
def project(people):
    return project_make(slug="views", owner=people["owner"], annotators=[people["ann"]],
                        reviewers=[people["reviewer"]], pairs=4, thumbs=2)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(name: str, **kwargs) -> str:
    return reverse(f"frontend:{name}", kwargs={"slug": "views", **kwargs})


def lease(client: Client, kind: str = "pairwise") -> int:
    page = client.get(url("task", kind_slug=kind)).content.decode()
    return int(re.search(r"/(\d+)/(?:judgment|feedback)\"", page).group(1))


@pytest.mark.parametrize("name", OWNER_PAGES + CONFIGURER_PAGES)
def test_annotators_cannot_open_owner_pages(project, people, name):
    assert client_for(people["ann"]).get(url(name)).status_code == 403


@pytest.mark.parametrize("name", OWNER_PAGES + CONFIGURER_PAGES)
def test_owners_open_every_owner_page(project, people, name):
    assert client_for(people["owner"]).get(url(name)).status_code == 200


@pytest.mark.parametrize("name", OWNER_PAGES)
def test_reviewers_read_quality_pages(project, people, name):
    assert client_for(people["reviewer"]).get(url(name)).status_code == 200


@pytest.mark.parametrize("name", CONFIGURER_PAGES)
def test_reviewers_cannot_import_or_export(project, people, name):
    assert client_for(people["reviewer"]).get(url(name)).status_code == 403


@pytest.mark.parametrize("name", OWNER_PAGES + CONFIGURER_PAGES + ("task",))
def test_non_members_get_404(project, people, name):
    kwargs = {"kind_slug": "pairwise"} if name == "task" else {}
    assert client_for(people["stranger"]).get(url(name, **kwargs)).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(project):
    response = Client().get(url("task", kind_slug="pairwise"))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_home_lists_my_projects_with_progress(project, people):
    page = client_for(people["ann"]).get("/").content.decode()
    assert "Views" in page and "Compare responses" in page and "Dashboard" not in page
    assert "Dashboard" in client_for(people["owner"]).get("/").content.decode()


def test_disabled_kind_is_404(people):
    project_make(slug="views", owner=people["owner"], annotators=[people["ann"]], pairs=1)
    assert client_for(people["ann"]).get(url("task", kind_slug="thumbs")).status_code == 404


def test_left_choice_is_stored_as_the_response_shown_left(project, people):
    client = client_for(people["ann"])
    for left_is_a, expected in ((True, "a"), (False, "b")):
        pk = lease(client)
        Assignment.objects.filter(pk=pk).update(left_is_a=left_is_a)
        response = client.post(
            url("judgment-submit", assignment_id=pk),
            {"choice": "left", "strength": "2", "rationale": "why", "time_spent_ms": "900"},
            **FRAGMENT,
        )
        assert response.status_code == 200 and b"data-card" in response.content
        judgment = Judgment.objects.get(task__assignments__pk=pk, annotator=people["ann"])
        assert (judgment.choice, judgment.shown_left) == (expected, expected)
        assert (judgment.strength, judgment.rationale, judgment.time_spent_ms) == (2, "why", 900)


def test_the_page_never_names_the_model(project, people):
    version = ModelVersion.objects.create(name="secret-model-x", source="/nowhere")
    for prompt in project.prompts.all():
        prompt.responses.update(model_version=version, sampling={"temperature": 0.77})
    client = client_for(people["ann"])
    page = client.get(url("task", kind_slug="pairwise")).content.decode()
    pk = lease(client)
    card = client.post(url("judgment-submit", assignment_id=pk), {"choice": "tie"},
                       **FRAGMENT).content.decode()
    for html in (page, card):
        assert "secret-model-x" not in html and "0.77" not in html and "imported" not in html


def test_without_javascript_a_verdict_redirects_back(project, people):
    client = client_for(people["ann"])
    pk = lease(client)
    response = client.post(url("judgment-submit", assignment_id=pk), {"choice": "right"})
    assert response.status_code == 302 and response["Location"] == url("task", kind_slug="pairwise")
    assert Judgment.objects.filter(annotator=people["ann"]).count() == 1


def test_bad_input_keeps_the_task_and_stores_nothing(project, people):
    client = client_for(people["ann"])
    pk = lease(client)
    response = client.post(url("judgment-submit", assignment_id=pk), {"choice": "left",
                           "strength": "9"}, **FRAGMENT)
    assert response.status_code == 400
    assert b"data-error" in response.content and f"/{pk}/judgment".encode() in response.content
    assert not Judgment.objects.exists()


def test_double_submit_stores_one_judgment(project, people):
    client = client_for(people["ann"])
    pk = lease(client)
    data = {"choice": "left", "idempotency_key": f"web-{pk}"}
    for _ in range(2):
        client.post(url("judgment-submit", assignment_id=pk), data, **FRAGMENT)
    assert Judgment.objects.count() == 1


def test_skip_then_thumbs(project, people):
    client = client_for(people["ann"])
    pk = lease(client)
    assert client.post(url("task-skip", kind_slug="pairwise", assignment_id=pk),
                       **FRAGMENT).status_code == 200
    assert Assignment.objects.get(pk=pk).status == Assignment.Status.SKIPPED
    pk = lease(client, "thumbs")
    client.post(url("feedback-submit", assignment_id=pk), {"thumbs": "down"}, **FRAGMENT)
    feedback = Feedback.objects.get()
    assert feedback.thumbs_up is False
    assert feedback.response_id == Assignment.objects.get(pk=pk).task.response_a_id


def test_someone_elses_assignment_is_404(project, people):
    other = user_make("other")
    project.memberships.create(user=other, role=Membership.Role.ANNOTATOR)
    pk = lease(client_for(other))
    response = client_for(people["ann"]).post(url("judgment-submit", assignment_id=pk),
                                              {"choice": "left"})
    assert response.status_code == 404


def test_posts_need_the_csrf_token(project, people):
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["ann"])
    pk = lease(client)
    target = url("judgment-submit", assignment_id=pk)
    assert client.post(target, {"choice": "left"}).status_code == 403
    page = client.get(url("task", kind_slug="pairwise")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    ok = client.post(target, {"choice": "left", "csrfmiddlewaretoken": token})
    assert ok.status_code == 302


def test_every_page_sends_a_strict_content_security_policy(project, people):
    response = client_for(people["ann"]).get(url("task", kind_slug="pairwise"))
    csp = response["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self';", "style-src 'self';",
                      "object-src 'none'", "frame-ancestors 'none'", "img-src 'self' data:;"):
        assert directive in csp
    assert "unsafe" not in csp
    assert response["Permissions-Policy"] and response["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in response.content and b" on" + b"error=" not in response.content


def test_remote_images_widen_img_src_only_when_the_project_allows(project, people):
    project.allow_remote_images = True
    project.save()
    response = client_for(people["ann"]).get(url("task", kind_slug="pairwise"))
    assert "img-src 'self' data: https:" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_api_docs_load_nothing_from_elsewhere(people, path):
    """Swagger UI and ReDoc come from this site's static files (drf-spectacular-sidecar):
    the policy names no other host and still forbids inline script."""
    response = client_for(people["ann"]).get(path)
    csp = response["Content-Security-Policy"]
    assert response.status_code == 200
    assert "https:" not in csp and "script-src 'self';" in csp
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "<script>" not in html and "<style" not in html and "https://" not in html


def test_swagger_start_script_is_served_as_javascript(people):
    response = client_for(people["ann"]).get("/api/docs/?script=")
    assert response.status_code == 200 and response["Content-Type"].startswith(
        "application/javascript"
    )
    assert b"/api/schema/" in response.content


def test_import_shows_the_validation_report(project, people):
    client = client_for(people["owner"])
    good = "\n".join(json.dumps({"prompt": f"Imported question {i}?"}) for i in range(3))
    response = client.post(url("import"), {"file": SimpleUploadedFile("p.jsonl", good.encode()),
                                           "format": "auto"})
    assert response.status_code == 200 and b"Imported 3 of 3 rows" in response.content
    bad = good + "\n" + json.dumps({"nothing": "here"})
    response = client.post(url("import"), {"file": SimpleUploadedFile("b.jsonl", bad.encode()),
                                           "format": "auto"})
    assert response.status_code == 400 and b"Nothing was imported" in response.content
    assert b"<td>4</td>" in response.content  # the bad line is named


def test_export_creates_a_snapshot_and_lists_it(project, people):
    client = client_for(people["owner"])
    form = {"format": "trl-kto-conversational", "split": "all", "vote": "majority",
            "min_judgments": 1, "min_agreement": 0, "ties": "drop", "both_bad": "drop"}
    response = client.post(url("export"), form, follow=True)
    assert response.status_code == 200 and b"snapshot" in response.content
    assert b"/download?file=data.jsonl" in response.content


def test_jobs_fragment_shows_progress_and_errors(project, people):
    version = ModelVersion.objects.create(name="base", source="/nowhere")
    GenerationJob.objects.create(
        project=project, model_version=version, prompt_ids=[1], total=8, done=2,
        status="failed", error="engine exploded",
    )
    FeedbackJob = apps.get_model("generation", "FeedbackJob")
    FeedbackJob.objects.create(project=project, kind="judge", total=10, done=4, labelled=3,
                               routed=1, status="running")
    html = client_for(people["owner"]).get(url("jobs-live")).content.decode()
    assert "engine exploded" in html and 'value="2"' in html and "<html" not in html
    assert "3 labelled · 1 to humans" in html and 'value="4"' in html


def test_rounds_plot_each_run_and_the_trend_across_runs(project, people):
    from annotation.services.exports import export_snapshot_create
    from training.models import TrainingMetric, TrainingRun

    base = ModelVersion.objects.create(name="base", source="/nowhere")
    snapshot, _ = export_snapshot_create(project=project, fmt="trl-dpo-conversational")
    for r in range(2):
        run = TrainingRun.objects.create(
            project=project, algorithm="dpo", snapshot=snapshot, policy=base, reference=base,
            output_name=f"r{r}",
        )
        for step in (1, 2, 3):
            TrainingMetric.objects.create(run=run, step=step, values={"loss": 1 / (step + r)})
    html = client_for(people["owner"]).get(url("rounds")).content.decode()
    assert "Across rounds" in html and html.count("<polyline") >= 3
