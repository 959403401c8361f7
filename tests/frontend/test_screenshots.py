"""Screenshots of every page type at 1280×800 and 390×844 (``var/screenshots/``).

Each page is shot as the viewport shows it and as a whole (``-full``). Besides writing
the files, each shot checks that the page does not scroll sideways
at that width (the one layout fault a screenshot alone would not flag).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from tests.frontend.conftest import NARROW, WIDE, screenshot_dir
from tests.frontend.data import PASSWORD
from tests.frontend.owner_data import owner_project_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANNOTATOR_PAGES = (("pairwise", "/p/screens/pairwise/"), ("thumbs", "/p/screens/thumbs/"))
OWNER_PAGES = (
    ("owner-dashboard", "/p/screens/dashboard/"),
    ("owner-jobs", "/p/screens/jobs/"),
    ("owner-rounds", "/p/screens/rounds/"),
    ("owner-leaderboard", "/p/screens/leaderboard/"),
    ("owner-import", "/p/screens/import/"),
    ("owner-export", "/p/screens/export/"),
    ("owner-data", "/p/screens/data/"),
    ("owner-settings", "/p/screens/settings/"),
    ("owner-people", "/p/screens/people/"),
    ("project-new", "/projects/new"),
    ("profile", "/me/"),
    ("home", "/"),
)
ERROR_PAGES = (("error-403", "/p/screens/dashboard/", 403), ("error-404", "/p/nowhere/", 404))


def _login(chromium, live_server, username: str):
    context = chromium.new_context(viewport=WIDE, base_url=live_server.url)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return context, page


def _shoot(page, name: str) -> list[str]:
    written = []
    for size in (WIDE, NARROW):
        page.set_viewport_size(size)
        page.wait_for_timeout(100)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= size["width"] + 1, f"{name} scrolls sideways at {size['width']} px ({wide})"
        path = screenshot_dir() / f"{name}-{size['width']}x{size['height']}.png"
        page.screenshot(path=str(path))
        full = path.with_name(f"{path.stem}-full.png")
        page.screenshot(path=str(full), full_page=True)
        written += [path.name, full.name]
    return written


def test_screenshots_of_every_page_type(chromium, live_server):
    data = owner_project_make("screens")
    written = []
    context, page = _login(chromium, live_server, data.newcomer.username)
    for name, url in ANNOTATOR_PAGES:
        page.goto(url)
        page.wait_for_selector("[data-task-form]")
        written += _shoot(page, name)
    page.goto("/p/screens/pairwise/")
    page.keyboard.press("?")
    written += _shoot(page, "pairwise-shortcuts")
    for name, url, status in ERROR_PAGES:  # the newcomer is an annotator: no dashboard
        assert page.goto(url).status == status, url
        written += _shoot(page, name)
    context.close()

    data.owner.user_permissions.add(Permission.objects.get(codename="add_project"))
    context, page = _login(chromium, live_server, data.owner.username)
    for name, url in OWNER_PAGES:
        response = page.goto(url)
        assert response.status == 200, url
        if name in ("owner-dashboard", "owner-rounds", "owner-leaderboard"):
            assert page.locator("svg.chart").count() >= 1, f"no chart on {url}"
        written += _shoot(page, name)
    judged = data.project.tasks.filter(judgments__rationale="").first()
    assert page.goto(f"/p/screens/data/items/{judged.pk}").status == 200
    written += _shoot(page, "owner-data-item")
    context.close()
    assert {"pairwise-1280x800.png", "pairwise-390x844.png", "thumbs-1280x800.png",
            "thumbs-390x844.png", "owner-dashboard-1280x800.png",
            "owner-dashboard-390x844.png", "owner-settings-390x844.png",
            "owner-people-390x844.png", "profile-390x844.png",
            "error-403-390x844.png", "owner-data-390x844.png",
            "owner-data-item-390x844.png"} <= set(written)
