"""PostgreSQL plans of the next-task query: the indexes that keep it constant-time.

The candidate query must walk the partial queue index in order (and stop at the first
acceptable task), and count a task's live leases through the per-task lease index. These
tests run on tables whose statistics say nothing (the state that once sent the lease
count through the per-annotator index at 0.3 ms a probe), with sequential scans priced
out so the choice between indexes is what is tested.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from annotation.data import lease_sql, queue_walk
from annotation.models import Membership
from annotation.services import assignment as services
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build

pytestmark = pytest.mark.django_db


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def world(require_postgres):
    owner = user_build("owner")
    annotators = [user_build(f"annotator{i}") for i in range(3)]
    project = project_build(owner=owner, slug="plans", overlap=2)
    for user in annotators:
        member_add(project=project, user=user, role=Membership.Role.ANNOTATOR)
    pairwise_tasks_build(project=project, n=40)
    for user in annotators:  # live leases of several annotators
        assert services.task_next_for_annotator(project=project, annotator=user) is not None
    return project, annotators


def test_candidate_query_walks_the_queue_index_and_counts_leases_per_task(world):
    project, annotators = world
    sql, params = lease_sql.candidate_sql(
        project_id=project.pk, kind="pairwise", annotator_id=annotators[0].pk,
        exclude_own=True, now=timezone.now(), skip=[],
    )
    plan = _plan(sql, params)
    assert "task_open_queue_v2" in plan, plan
    assert "assignment_live_by_annotator" not in plan, plan
    assert "Sort" not in plan, plan  # index order, no sort of every open task


def test_own_lease_lookup_uses_the_per_annotator_index(world):
    project, annotators = world
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT a.id FROM annotation_assignment a"
            " WHERE a.annotator_id = %s AND a.status = 'leased' AND a.expires_at > %s",
            [annotators[1].pk, timezone.now()],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "assignment_live_by_annotator" in plan, plan


def test_per_annotator_checks_probe_by_task_not_through_the_callers_history(world):
    """With statistics that say nothing, the "not seen / not judged" checks must not read
    the caller's assignments or judgments through their annotator index (a read of their
    whole history per candidate row), in the walk from the head or from a cursor."""
    project, annotators = world
    filters = {
        "project_id": project.pk, "kind": "pairwise", "annotator_id": annotators[0].pk,
        "exclude_own": True, "now": timezone.now(), "skip": [],
    }
    head = lease_sql.candidate_sql(**filters)
    walk = queue_walk.walk_sql(cursor=[(5, 1), (0, 2)], lock="", **filters)
    for sql, params in (head, walk):
        plan = _plan(sql, params)
        assert "assignment_unique" in plan, plan
        assert "assignment_by_annotator" not in plan, plan
        assert "annotator_id_" not in plan, plan  # Django's plain annotator FK indexes
