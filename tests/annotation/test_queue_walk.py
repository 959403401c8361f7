"""The next-task walk starts past what the annotator already passed (annotation/data/queue_walk.py).

The cursor is a hint: these tests check that it skips an annotator's history, that it
never hides a task that is only temporarily taken, that moved tasks go behind it, and
that a task hidden by a writer that did not move it is still handed out.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotation.data import queue_walk
from annotation.models import Assignment, Task
from annotation.services import assignment as services
from annotation.services.judgments import judgment_submit
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    return [user_build(name) for name in ("owner", "x", "y", "z")]


@pytest.fixture
def project(people):
    project = project_build(owner=people[0], overlap=2, max_overlap=3)
    for user in people[1:]:
        member_add(project=project, user=user)
    return project


@pytest.fixture
def no_margin(monkeypatch):
    """Walks may pass rows moved a moment ago (the tests run within the margin)."""
    monkeypatch.setattr(queue_walk, "MARGIN_US", 0)


def _next(project, user):
    return services.task_next_for_annotator(project=project, annotator=user)


def _judge(project, user):
    assignment = _next(project, user)
    judgment_submit(assignment=assignment, annotator=user, choice="a")
    return assignment


def _cursor(user) -> list[queue_walk.Position]:
    latest = Assignment.objects.filter(annotator=user).latest("pk")
    return queue_walk.cursor_parse(latest.walk_from, tiers=3)


def _position(task: Task) -> queue_walk.Position:
    task.refresh_from_db()
    return (task.queue_key, task.pk)


def test_cursor_text_round_trips_and_bad_text_means_the_head():
    cursor = [(5, 7), (0, 3), queue_walk.START]
    assert queue_walk.cursor_parse(queue_walk.cursor_format(cursor), tiers=3) == cursor
    assert queue_walk.cursor_parse("", tiers=2) == [queue_walk.START] * 2
    assert queue_walk.cursor_parse("x:1;9:9", tiers=3) == [queue_walk.START, (9, 9), (-1, 0)]


def test_advance_passes_earlier_tiers_up_to_the_bound_and_never_goes_back():
    task = Task(pk=50, overlap_wanted=2, done_count=0, queue_key=400)  # tier 2
    walked = [(100, 1), (900, 9), (10, 2)]
    out = queue_walk.cursor_advance(walked_from=walked, task=task, bound_us=300)
    assert out == [(300, 0), (900, 9), (10, 2)]  # tier 1 to the bound; tier 2 kept its lead
    out = queue_walk.cursor_advance(walked_from=[queue_walk.START] * 3, task=task, bound_us=10**9)
    assert out == [(10**9, 0), (400, 50), queue_walk.START]


def test_a_lone_annotators_next_walk_starts_past_their_history(project, people, no_margin):
    tasks = pairwise_tasks_build(project=project, n=12)
    x = people[1]
    for _ in range(8):
        _judge(project, x)
    judged = [t for t in tasks if Assignment.objects.filter(task=t, annotator=x).exists()]
    assert len(judged) == 8
    following = _next(project, x)
    assert following.task_id not in {t.pk for t in judged}
    cursor = _cursor(x)
    # Every judged task (one slot left: tier 1) is behind the walk's start.
    assert all(_position(t) <= cursor[0] for t in judged), (cursor, [_position(t) for t in judged])


def test_judged_tasks_go_behind_every_cursor_so_closest_to_completion_stays_first(
    project, people, no_margin
):
    tasks = pairwise_tasks_build(project=project, n=6)
    x, judge = people[1], people[2]
    first = _judge(project, x)  # x's walk has now passed tier 1 (one slot left)
    target = next(t for t in tasks if t.pk != first.task_id)
    before = _position(target)
    # A judge without a lease (programmatic) moves a fresh task to tier 1.
    judgment_submit(task=target, annotator=judge, choice="b")
    assert _position(target) > before  # to the back of its new tier
    assert _next(project, x).task_id == target.pk  # offered before the fresh tasks


def test_a_task_held_by_a_long_lease_stays_in_front_and_is_offered_when_it_lapses(
    project, people, no_margin
):
    held, other = pairwise_tasks_build(project=project, n=2, overlap=1)
    x, y = people[1], people[2]
    lease = _next(project, y)
    assert lease.task_id == held.pk
    an_hour_ago = timezone.now() - timedelta(hours=1)  # y took it long ago and kept it
    Assignment.objects.filter(pk=lease.pk).update(leased_at=an_hour_ago)
    Task.objects.filter(pk=held.pk).update(queue_key=queue_walk.time_key(an_hour_ago))
    assert _judge(project, x).task_id == other.pk  # x walked past the held task
    assert _cursor(x)[0] < _position(held)  # ... and it stays in front of x's walk
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now())  # it lapses
    assert _next(project, x).task_id == held.pk


def test_a_task_put_behind_the_cursor_is_still_handed_out_and_the_cursor_restarts(
    project, people, no_margin
):
    tasks = pairwise_tasks_build(project=project, n=3, overlap=1)
    x = people[1]
    _judge(project, x)
    _judge(project, x)
    (last,) = [t for t in tasks if not Assignment.objects.filter(task=t).exists()]
    # A writer that changes a task without moving it (an import, AI feedback adding a
    # slot) can leave it behind a cursor; here the cursor is simply far ahead.
    latest = Assignment.objects.filter(annotator=x).latest("pk")
    Assignment.objects.filter(pk=latest.pk).update(walk_from=f"{10**18}:0")
    assert _next(project, x).task_id == last.pk  # found by the walk from the head
    assert _cursor(x)[0] == (0, last.pk)  # a fresh cursor, from the head to the task


def test_the_walk_from_a_cursor_reads_no_history_rows(project, people, no_margin, require_postgres):
    pairwise_tasks_build(project=project, n=30)
    x = people[1]
    for _ in range(20):
        _judge(project, x)
    cursor = [tuple(p) for p in _cursor(x)]
    Assignment.objects.filter(annotator=x, status="leased").delete()
    sql, params = queue_walk.walk_sql(
        cursor=cursor, lock="", project_id=project.pk, kind="pairwise", annotator_id=x.pk,
        exclude_own=True, now=timezone.now(), skip=[],
    )
    with connection.cursor() as db:
        db.execute("SET LOCAL enable_seqscan = off")
        db.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        plan = "\n".join(row[0] for row in db.fetchall())
    assert "task_open_queue_v2" in plan and "Sort" not in plan, plan
    # The twenty judged tasks wait in tier 1 (one slot left); no branch reads them.
    removed = [int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
    assert sum(removed) <= 2, plan
