"""The annotator's loop in real Chromium: keyboard only, the right A/B bookkeeping,
no script from a response ever runs, and how fast the next task appears."""

from __future__ import annotations

import itertools
import json
import re
import statistics

import pytest
from django.db import connection

from annotation.models import Assignment, Feedback, Judgment
from annotation.services import assignment as assignment_services
from tests.frontend.conftest import login_by_keyboard, screenshot_dir
from tests.frontend.data import PASSWORD, hostile_project_make, project_make, user_make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KEY_SIDE = {"1": "left", "2": "right", "3": "tie", "4": "both_bad"}
# (choice key, strength key or None, rationale typed after pressing "r")
PAIRWISE_SCRIPT = [
    ("1", None, ""), ("2", "Shift+Digit2", ""), ("3", None, ""), ("4", None, "both wrong"),
    ("1", "Shift+Digit3", "clearer"), ("2", None, ""), ("1", "Shift+Digit2", ""),
    ("3", None, ""), ("2", "Shift+Digit3", ""), ("1", None, ""),
]
THUMBS_SCRIPT = [("1", True), ("u", True), ("2", False), ("d", False), ("1", True)]
ACTION_ID = re.compile(r"/(\d+)/(?:judgment|feedback)$")


class AlternatingSides:
    """Stands in for ``secrets`` in the lease service, so both sides are certain to occur."""

    def __init__(self) -> None:
        self._bits = itertools.cycle([1, 0])

    def randbelow(self, n: int) -> int:
        return next(self._bits)


def assignment_id(page) -> int:
    action = page.get_attribute("[data-task-form]", "action")
    return int(ACTION_ID.search(action).group(1))


def wait_for_next(page, previous: int) -> None:
    """Until the card of ``previous`` is gone and the new card has the focus."""
    page.wait_for_function(
        """previous => {
            const area = document.querySelector('[data-task-area]');
            const form = document.querySelector('[data-task-form]');
            const moved = !form || !form.action.match(new RegExp('/' + previous + '/'));
            return moved && !area.hasAttribute('aria-busy');
        }""",
        arg=previous,
    )
    assert page.evaluate("document.activeElement.matches('[data-card]')"), "focus was lost"


def expected_choice(side: str, left_is_a: bool) -> str:
    if side == "left":
        return "a" if left_is_a else "b"
    if side == "right":
        return "b" if left_is_a else "a"
    return side


def measures(page, name: str) -> list[float]:
    return page.evaluate(f"performance.getEntriesByName('{name}').map(e => e.duration)")


def pairwise_by_keyboard(page) -> list[tuple]:
    done = []
    for key, strength, rationale in PAIRWISE_SCRIPT:
        current = assignment_id(page)
        left_text = page.inner_text('[data-response="left"]')
        page.keyboard.press(key)
        if strength:
            page.keyboard.press(strength)
        if rationale:
            page.keyboard.press("r")
            page.keyboard.type(rationale)
            page.keyboard.press("Escape")
        page.keyboard.press("Enter")
        wait_for_next(page, current)
        done.append((current, left_text, key, strength, rationale))
    return done


def check_judgments(annotator, done: list[tuple]) -> None:
    judgments = {j.task_id: j for j in Judgment.objects.filter(annotator=annotator)}
    assert len(judgments) == len(PAIRWISE_SCRIPT)
    sides_seen = set()
    for pk, left_text, key, strength, rationale in done:
        lease = Assignment.objects.select_related("task").get(pk=pk)
        # Response A is the iterative answer ("Use iteration…"): the page showed it on
        # the left exactly when the lease says left_is_a.
        assert lease.left_is_a == ("Use iteration" in left_text)
        sides_seen.add(lease.left_is_a)
        judgment = judgments[lease.task_id]
        side = KEY_SIDE[key]
        assert judgment.choice == expected_choice(side, lease.left_is_a)
        assert judgment.shown_left == ("a" if lease.left_is_a else "b")
        wanted_strength = 0 if side in ("tie", "both_bad") else int(strength[-1]) if strength else 1
        assert judgment.strength == wanted_strength
        assert judgment.rationale == rationale
        assert judgment.time_spent_ms and judgment.time_spent_ms > 0
        assert lease.status == Assignment.Status.DONE
    assert sides_seen == {True, False}


def test_annotator_works_by_keyboard_only(browser_page, monkeypatch):
    monkeypatch.setattr(assignment_services, "secrets", AlternatingSides())
    owner, annotator = user_make("owner"), user_make("ann")
    project_make(slug="kb", owner=owner, annotators=[annotator], pairs=12, thumbs=6)
    page = browser_page
    login_by_keyboard(page, username="ann", password=PASSWORD, next_url="/p/kb/pairwise/")

    skipped = assignment_id(page)
    page.keyboard.press("s")
    wait_for_next(page, skipped)
    page.keyboard.press("?")
    assert page.is_visible("#shortcuts")
    page.keyboard.press("Escape")
    assert not page.is_visible("#shortcuts")
    assert page.evaluate("document.activeElement.matches('[data-card]')")

    done = pairwise_by_keyboard(page)
    key_to_ready = measures(page, "pf-choice-to-ready")
    submit_to_ready = measures(page, "pf-submit-to-ready")
    check_judgments(annotator, done)
    skipped_lease = Assignment.objects.get(pk=skipped)
    assert skipped_lease.status == Assignment.Status.SKIPPED
    assert not Judgment.objects.filter(task_id=skipped_lease.task_id).exists()

    page.goto("/p/kb/thumbs/")
    rated = []
    for key, up in THUMBS_SCRIPT:
        current = assignment_id(page)
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_for_next(page, current)
        rated.append((current, up))
    feedback = {f.task_id: f for f in Feedback.objects.filter(annotator=annotator)}
    assert len(feedback) == len(THUMBS_SCRIPT)
    for pk, up in rated:
        lease = Assignment.objects.select_related("task").get(pk=pk)
        assert feedback[lease.task_id].thumbs_up is up
        assert feedback[lease.task_id].response_id == lease.task.response_a_id
    assert Judgment.objects.filter(annotator=annotator).count() == len(PAIRWISE_SCRIPT)
    problems = ("Content Security Policy", "pageerror")
    assert not [m for m in page.console_messages if any(p in m for p in problems)]

    report = {
        "database": connection.vendor,
        "judgments": len(key_to_ready),
        "median_choice_key_to_next_task_ms": round(statistics.median(key_to_ready), 1),
        "median_submit_to_next_task_ms": round(statistics.median(submit_to_ready), 1),
        "max_choice_key_to_next_task_ms": round(max(key_to_ready), 1),
    }
    timings = screenshot_dir() / f"timings-{connection.vendor}.json"
    timings.write_text(json.dumps(report, indent=2))
    print(f"\nkey-to-next-task ({connection.vendor}): {report}")
    assert len(key_to_ready) == len(PAIRWISE_SCRIPT)


def test_scripts_in_responses_never_run(browser_page):
    owner, annotator = user_make("owner"), user_make("ann")
    hostile_project_make(owner=owner, annotator=annotator)
    page = browser_page
    login_by_keyboard(page, username="ann", password=PASSWORD, next_url="/p/hostile/pairwise/")
    for kind in ("pairwise", "thumbs"):
        response = page.goto(f"/p/hostile/{kind}/")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp
        assert "img-src 'self' data:;" in csp  # no remote images for this project
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None
        responses = page.locator("[data-response]")
        assert "window.__pwned = 'script'" in responses.first.inner_text()  # shown as text
        assert page.locator("[data-response] :is(script, img, svg, iframe)").count() == 0
        assert page.locator("script:not([src])").count() == 0
        hrefs = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
        assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")]
        for link in page.locator("[data-response] a").all():
            link.click()
        page.wait_for_timeout(200)
        assert page.evaluate("window.__pwned") is None
    assert not [m for m in page.console_messages if "PWNED" in m]

    # Second wall: had markup slipped through, the policy would still stop it. The
    # promise settles once the broken image has fired its error event.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate("""() => new Promise(settled => {
            document.body.insertAdjacentHTML('beforeend',
                '<img id="bait" src="/no-such-image.png" onerror="window.__pwned = 1">');
            document.getElementById('bait').addEventListener('error', settled);
            const script = document.createElement('script');
            script.textContent = "window.__pwned = 2";
            document.body.append(script);
        })""")
    assert page.evaluate("window.__pwned") is None
