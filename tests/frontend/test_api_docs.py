"""``/api/docs/`` in Chromium with every request that leaves the server refused: the
Swagger UI bundle, its start-up script and the schema all come from this site."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.frontend.data import PASSWORD, user_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _offline(page, server_url: str) -> tuple[list[str], list[str]]:
    """Abort every request to another host; return (served, refused) URLs."""
    here = urlsplit(server_url).netloc
    served, refused = [], []

    def route(request_route) -> None:
        url = request_route.request.url
        if urlsplit(url).netloc == here or url.startswith("data:"):
            served.append(url)
            request_route.continue_()
        else:
            refused.append(url)
            request_route.abort()

    page.route("**/*", route)
    # The Swagger and ReDoc bundles are megabytes; a loaded CI machine can be slow to
    # serve them through the live server, so allow more than the suite's 15 s.
    page.set_default_timeout(90_000)
    return served, refused


def test_swagger_ui_renders_operations_offline(browser_page, live_server):
    user_make("reader")
    page = browser_page
    served, refused = _offline(page, live_server.url)
    page.goto("/accounts/login/")
    page.fill("#id_username", "reader")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    page.goto("/api/docs/")
    page.wait_for_selector(".opblock-summary-path")
    operations = page.locator(".opblock").count()
    assert operations > 20, f"only {operations} operations rendered"
    assert page.locator(".opblock-summary-path", has_text="/api/projects/").count() >= 1
    assert refused == [], f"requests left the server: {refused}"
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/" in u for u in served)
    problems = ("Content Security Policy", "pageerror")
    assert not [m for m in page.console_messages if any(p in m for p in problems)]


def test_redoc_renders_offline(browser_page, live_server):
    page = browser_page
    _, refused = _offline(page, live_server.url)
    page.goto("/api/redoc/")
    page.wait_for_selector("[data-section-id^='operation/']")
    assert page.locator("[data-section-id^='operation/']").count() > 20
    assert refused == [], f"requests left the server: {refused}"
