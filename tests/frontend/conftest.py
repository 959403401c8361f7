"""Browser fixtures: Debian's Chromium driven by Playwright against ``live_server``.

Outside CI a missing or broken Chromium skips the browser tests; with ``CI=true``
they fail (``tests.conftest.require``). Screenshots go to ``var/screenshots/`` in the
repository (``PREFLOOP_SCREENSHOT_DIR`` overrides it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import require

CHROMIUM = os.environ.get("PREFLOOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """Test accounts need no slow password hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def screenshot_dir() -> Path:
    default = Path(settings.BASE_DIR) / "var" / "screenshots"
    folder = Path(os.environ.get("PREFLOOP_SCREENSHOT_DIR", str(default)))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One browser per test module. Playwright's sync API keeps an event loop running
    in this thread while it is started, so Django's guard against ORM calls from async
    code must stand aside until the module is done (and only until then)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        require(False, "the playwright package is not installed (requirements-dev.txt)")
    require(Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Error as exc:
        playwright.stop()
        _env_restore("DJANGO_ALLOW_ASYNC_UNSAFE", saved)
        require(False, f"Chromium at {CHROMIUM} cannot start: {exc}")
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
        _env_restore("DJANGO_ALLOW_ASYNC_UNSAFE", saved)


def _env_restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture
def browser_page(chromium, live_server):
    """A fresh browser context at 1280×800 that records console messages and page errors."""
    context = chromium.new_context(viewport=WIDE, base_url=live_server.url)
    page = context.new_page()
    page.console_messages = []
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.on("pageerror", lambda error: page.console_messages.append(f"pageerror: {error}"))
    page.set_default_timeout(15_000)
    yield page
    context.close()


def login_by_keyboard(page, *, username: str, password: str, next_url: str) -> None:
    """The login form autofocuses the username: type, Tab, type, Enter."""
    page.goto(f"/accounts/login/?next={next_url}")
    # Autofocus can land after the load event on a busy machine; wait for it to settle,
    # then make sure the first keystroke goes to the username field.
    page.wait_for_selector("#id_username")
    page.focus("#id_username")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/accounts/login/" not in url and url.endswith(next_url))
