"""The owner's rounds page: the rounds table and plot, and the "Start a round" form
(owners only; a round it starts queues its first step after commit, no worker here)."""

from __future__ import annotations

import base64
import re

import pytest
from django.test import Client
from django.urls import reverse

from generation.models import ModelVersion
from tests.frontend.data import project_make, user_make
from training.rounds.models import Round

pytestmark = pytest.mark.django_db

START = {"policy": "base", "algorithm": "ipo", "labelling": "programmatic", "judge": "",
         "reference": "initial", "rounds": "2", "samples": "3",
         "hyperparameters": '{"epochs": 1}'}


@pytest.fixture
def people():
    names = ("owner", "ann", "reviewer", "stranger")
    return dict(zip(names, (user_make(n) for n in names), strict=True))


@pytest.fixture
def project(people):
    project = project_make(slug="rp", owner=people["owner"], annotators=[people["ann"]],
                           reviewers=[people["reviewer"]], pairs=2, thumbs=0)
    ModelVersion.objects.create(name="base", source="/models/base")
    return project


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


URL = reverse("frontend:rounds", kwargs={"slug": "rp"})


def finished_round(project) -> Round:
    base = ModelVersion.objects.get(name="base")
    new = ModelVersion.objects.create(name="base-r1", source="/models/r1", parent=base, version=1)
    return Round.objects.create(
        project=project, index=1, initial_version=base, policy=base, reference=base,
        new_version=new, labelling="programmatic", status=Round.Status.SUCCEEDED,
        step=Round.Step.DONE,
        metrics={"accuracy_before": {"value": 0.25}, "accuracy": {"value": 0.5},
                 "win_rate": {"value": 0.625, "ci_bootstrap": [0.5, 0.75]},
                 "kl": {"value": 0.0123}, "length": {"mean_tokens": 11.5},
                 "length_before": {"mean_tokens": 12.0}},
        timings={"generate": {"seconds": 3.0}, "train": {"seconds": 42.5}},
    )


def test_owner_sees_the_form_and_starts_a_round(
    project, people, django_capture_on_commit_callbacks
):
    client = client_for(people["owner"])
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="round-start-form"' in html and "csrfmiddlewaretoken" in html
    for name in ("algorithm", "labelling", "judge", "reference", "rounds", "samples",
                 "hyperparameters", "policy"):
        assert f'<label for="id_{name}"' in html, name
    assert "No rounds yet" in html
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(URL, START)
    assert response.status_code == 302 and response["Location"] == URL
    rnd = Round.objects.get(project=project)
    assert (rnd.index, rnd.status, rnd.step) == (1, "pending", "generate")
    settings = (rnd.algorithm, rnd.labelling, rnd.reference_choice)
    assert settings == ("ipo", "programmatic", "initial")
    assert rnd.sampling["n"] == 3 and rnd.rounds_remaining == 1
    assert rnd.hyperparameters == {"epochs": 1} and rnd.created_by == people["owner"]
    assert rnd.policy.name == "base" and not rnd.inline
    assert len(callbacks) == 1  # the first step is queued after commit
    html = client.get(URL).content.decode()
    assert "Round 1 (chain of 2) started" in html
    assert 'id="rounds-table"' in html and "status-pending" in html and "at generate" in html


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"labelling": "programmatic", "judge": "constitutional"}, "programmatic:"),
        ({"hyperparameters": "[1, 2]"}, "must be a JSON object"),
        ({"hyperparameters": "{nope"}, "not valid JSON"),
        ({"hyperparameters": '{"warp": 9}'}, "unknown hyperparameters"),
        ({"rounds": "6"}, "less than or equal to 5"),
        ({"algorithm": "ppo"}, "Select a valid choice"),
        ({"policy": ""}, "no policy to start from"),
    ],
)
def test_invalid_settings_are_shown_in_the_form(project, people, change, error,
                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(people["owner"]).post(URL, {**START, **change})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="round-start-form"' in html and error in html
    assert not Round.objects.exists() and not callbacks


def test_a_second_round_while_one_is_active_is_refused(
    project, people, django_capture_on_commit_callbacks
):
    client = client_for(people["owner"])
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(URL, START).status_code == 302
        response = client.post(URL, START)
    assert response.status_code == 400
    assert "round 1 of this project is still pending" in response.content.decode()
    assert Round.objects.count() == 1


def test_reviewer_reads_the_page_without_the_form(project, people):
    finished_round(project)
    client = client_for(people["reviewer"])
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "round-start-form" not in html and 'id="rounds-table"' in html
    assert client.post(URL, START).status_code == 403
    assert Round.objects.count() == 1


def test_annotators_get_403_and_strangers_404(project, people):
    for who, status in (("ann", 403), ("stranger", 404)):
        client = client_for(people[who])
        assert client.get(URL).status_code == status, who
        assert client.post(URL, START).status_code == status, who
    assert not Round.objects.exists()


def test_a_finished_round_shows_in_the_table_and_the_plot(project, people):
    finished_round(project)
    page = client_for(people["owner"]).get(URL)
    html = page.content.decode()
    row = re.search(r'<table class="data" id="rounds-table">.*?</table>', html, re.S).group(0)
    for text in ("status-succeeded", "base (v0) → base-r1 (v1)", "25% → 50%", "62%",
                 "[50%, 75%]", "0.012", "11.5", "generate 3.0 s", "train 42.5 s"):
        assert text in row, text
    uri = re.search(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html).group(1)
    svg = base64.b64decode(uri).decode()
    assert "<svg" in svg and "held-out accuracy" in svg
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "img-src 'self' data:" in page["Content-Security-Policy"]
    assert "<script>" not in html  # no inline script
    assert "Training runs" in html  # the training-run charts stay below


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_page_in_a_browser_plot_loads_and_form_works_by_keyboard(browser_page, people):
    """Under the real CSP: the plot image draws, nothing is blocked, and the form (with
    its collapsed hyperparameters) is filled and sent by keyboard; a bad value comes
    back in the form and no round is made."""
    from tests.frontend.conftest import login_by_keyboard, screenshot_dir
    from tests.frontend.data import PASSWORD

    project = project_make(slug="rp", owner=people["owner"], pairs=1)
    ModelVersion.objects.create(name="base", source="/models/base")
    finished_round(project)
    page = browser_page
    login_by_keyboard(page, username="owner", password=PASSWORD, next_url=URL)
    width = page.locator(".rounds-plot img").evaluate("img => img.complete && img.naturalWidth")
    assert width > 0 and page.console_messages == []  # no CSP refusals
    page.locator("#id_samples").focus()
    page.keyboard.press("Tab")  # the "Hyperparameters" summary
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    page.keyboard.type("{not json")
    page.keyboard.press("Tab")  # the submit button
    page.keyboard.press("Enter")
    page.wait_for_selector("#round-start-form .errorlist")
    assert "not valid JSON" in page.locator("#round-start-form").inner_text()
    page.screenshot(path=str(screenshot_dir() / "rounds-page.png"), full_page=True)
    assert Round.objects.count() == 1
    assert [m for m in page.console_messages if "400 (Bad Request)" not in m] == []
