"""Errors people can read: styled 403/404/500 pages (the 403 names the role needed),
an ordinary refusal logged without a traceback, and no page that speaks of CLI flags."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from django.test import Client

from frontend import selectors
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db
TEMPLATES = Path(__file__).resolve().parents[2] / "frontend" / "templates"


@pytest.fixture
def people():
    owner, ann = user_make("owner"), user_make("ann")
    project_make(slug="errs", owner=owner, annotators=[ann], pairs=1, thumbs=0)
    return {"owner": owner, "ann": ann}


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_403_page_names_the_role_and_logs_no_traceback(people, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = _client(people["ann"]).get("/p/errs/dashboard/")
    html = response.content.decode()
    assert response.status_code == 403
    assert "This needs one of the roles: owner, reviewer." in html
    assert 'class="site-header"' in html and "/static/frontend/app.css" in html
    refusals = [r for r in caplog.records if getattr(r, "status_code", None) == 403]
    assert refusals and all(r.exc_info is None for r in refusals)
    assert "Traceback" not in caplog.text


def test_404_page_is_styled_and_names_no_project(people):
    response = _client(people["ann"]).get("/p/no-such-project/dashboard/")
    html = response.content.decode()
    assert response.status_code == 404 and "Nothing here" in html
    assert 'class="site-header"' in html


def test_500_page_is_styled_and_keeps_its_traceback_in_the_log(people, monkeypatch, caplog):
    def broken(**_):
        raise RuntimeError("boom")

    monkeypatch.setattr(selectors, "project_cards", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = _client(people["ann"]).get("/")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    assert b"boom" not in response.content
    assert any(r.exc_info for r in caplog.records if getattr(r, "status_code", 0) == 500)


def test_no_page_speaks_of_command_line_flags():
    flag = re.compile(r"\s--[a-z][a-z-]+")
    found = [
        f"{path.relative_to(TEMPLATES)}: {m.group().strip()}"
        for path in TEMPLATES.rglob("*.html")
        for m in flag.finditer(path.read_text())
    ]
    assert found == []
