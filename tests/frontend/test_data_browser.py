"""The data browser: filters, keyset paging, one item's detail, flagging a judgment
(page and API) and the next export leaving the flagged judgment out."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from annotation.io.rules import ExportRules
from annotation.models import Judgment, JudgmentFlag, Task
from annotation.selectors import exports as export_selectors
from annotation.services import judgments
from frontend import data_browser
from tests.frontend.data import project_make, user_make

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world():
    owner, rev, ann1, ann2 = (user_make(n) for n in ("owner", "rev", "ann1", "ann2"))
    project = project_make(slug="browse", owner=owner, annotators=[ann1, ann2], reviewers=[rev],
                           pairs=3)
    tasks = list(Task.objects.filter(project=project).order_by("pk"))
    # Task 0: both pick a (agree). Task 1: a vs b (disagree). Task 2: ann1 alone, b.
    verdicts = [(0, ann1, "a", "clear"), (0, ann2, "a", ""), (1, ann1, "a", ""),
                (1, ann2, "b", "B is right"), (2, ann1, "b", "")]
    for i, user, choice, rationale in verdicts:
        judgments.judgment_submit(task=tasks[i], annotator=user, choice=choice, strength=1,
                                  shown_left="a", rationale=rationale)
    return {"owner": owner, "rev": rev, "ann1": ann1, "ann2": ann2, "project": project,
            "tasks": tasks}


def _ids(project, **filters) -> list[tuple[int, str]]:
    page = data_browser.judgment_page(
        project=project, filters=data_browser.BrowserFilters(**filters)
    )
    return [(row.task_id, row.annotator.username) for row in page.rows]


def test_filters(world):
    project, tasks = world["project"], world["tasks"]
    t0, t1, t2 = (t.pk for t in tasks)
    assert _ids(project, annotator="ann2") == [(t1, "ann2"), (t0, "ann2")]
    assert sorted(_ids(project, agreement="low")) == [(t1, "ann1"), (t1, "ann2")]
    assert sorted(_ids(project, agreement="high")) == [(t0, "ann1"), (t0, "ann2")]
    assert sorted(_ids(project, has_rationale=True)) == [(t0, "ann1"), (t1, "ann2")]
    assert _ids(project, source="ai") == []
    assert len(_ids(project, split="train")) == 5 and _ids(project, split="eval") == []


def test_keyset_pages_cover_every_row_once(world, monkeypatch):
    monkeypatch.setattr(data_browser, "PAGE_SIZE", 2)
    client = client_for(world["owner"])
    seen, url = [], "/p/browse/data/"
    for _ in range(5):
        page = client.get(url)
        assert page.status_code == 200
        seen += [row.pk for row in page.context["page"].rows]
        after = page.context["page"].next_after
        if after is None:
            break
        assert f"after={after}".encode() in page.content
        url = f"/p/browse/data/?after={after}"
    assert seen == sorted(Judgment.objects.values_list("pk", flat=True), reverse=True)


def test_item_detail_flag_and_export(world):
    project, rev, tasks = world["project"], world["rev"], world["tasks"]
    rules = ExportRules(split="all")
    fmt = "trl-dpo-conversational"
    rows, counts = export_selectors.export_rows_build(project=project, fmt=_fmt(fmt), rules=rules)
    assert counts["judgments_flagged"] == 0 and counts["dropped"].get("split_vote") == 1
    bad = Judgment.objects.get(task=tasks[1], annotator=world["ann2"])
    client = client_for(rev)
    item = client.get(f"/p/browse/data/items/{tasks[1].pk}")
    assert item.status_code == 200 and b"B is right" in item.content
    done = client.post(f"/p/browse/data/judgments/{bad.pk}/flag", {"reason": "random clicks"})
    assert done.status_code == 302
    flag = JudgmentFlag.objects.get(judgment=bad)
    assert flag.flagged_by == rev and flag.reason == "random clicks" and flag.cleared_at is None
    rows2, counts2 = export_selectors.export_rows_build(project=project, fmt=_fmt(fmt),
                                                        rules=rules)
    assert counts2["judgments_flagged"] == 1 and len(rows2) == len(rows) + 1
    assert "split_vote" not in counts2["dropped"]
    shown = client.get(f"/p/browse/data/items/{tasks[1].pk}").content
    assert b"Flagged by rev" in shown and b"random clicks" in shown
    assert client.post(f"/p/browse/data/judgments/{bad.pk}/unflag").status_code == 302
    flag.refresh_from_db()
    assert flag.cleared_by == rev and flag.cleared_at is not None
    assert b"cleared by rev" in client.get(f"/p/browse/data/items/{tasks[1].pk}").content
    assert _ids(project, flagged=True) == []


def test_annotators_cannot_browse_or_flag(world):
    client = client_for(world["ann1"])
    judgment = Judgment.objects.first()
    assert client.get("/p/browse/data/").status_code == 403
    assert client.post(f"/p/browse/data/judgments/{judgment.pk}/flag",
                       {"reason": "x"}).status_code == 403
    assert not JudgmentFlag.objects.exists()


def test_flag_api(world):
    api = APIClient()
    api.force_authenticate(world["owner"])
    judgment = Judgment.objects.first()
    url = f"/api/projects/browse/judgments/{judgment.pk}/flag"
    assert api.post(url, {"reason": ""}, format="json").status_code == 400
    made = api.post(url, {"reason": "copied text"}, format="json")
    assert made.status_code == 201 and made.json()["flagged_by"] == "owner"
    assert api.post(url, {"reason": "again"}, format="json").json()["id"] == made.json()["id"]
    other = project_make(slug="elsewhere", owner=user_make("o2"), pairs=0)
    assert api.post(f"/api/projects/{other.slug}/judgments/{judgment.pk}/flag",
                    {"reason": "x"}, format="json").status_code == 404


def _fmt(name: str):
    from annotation.io.writers import FORMATS

    return FORMATS[name]
