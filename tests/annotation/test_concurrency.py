"""Many annotators at once: no task over its overlap, no duplicate, nothing lost.

Each worker thread has its own database connection (Django's are per thread) and
closes it when done. The 50-annotator run needs PostgreSQL (``require_postgres``:
skipped locally without it, a failure in CI); a smaller run also exercises SQLite's
IMMEDIATE transactions.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.db.models import Count

from annotation.models import Assignment, Judgment, Project, Task
from annotation.services.assignment import task_next_for_annotator
from annotation.services.judgments import judgment_submit
from prefloop.exceptions import ConflictError
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build


def _annotate_until_done(
    *, project, user, barrier: threading.Barrier, dawdle: float = 0.0
) -> list[tuple]:
    """Loop next-task -> submit; every fifth submission is sent twice (a retry).

    With ``dawdle`` > 0, that share of leases is left to expire before submitting;
    a refused late submission (409) is then expected and the annotator moves on.
    """
    rng = random.Random(user.pk)
    stored = []
    try:
        barrier.wait()
        while (assignment := task_next_for_annotator(project=project, annotator=user)) is not None:
            key = uuid.uuid4().hex
            choice = rng.choice(["left", "right", "tie", "both_bad"])
            if rng.random() < dawdle:
                time.sleep(project.lease_seconds + 0.1)
            try:
                judgment, created = judgment_submit(
                    assignment=assignment, annotator=user, choice=choice, idempotency_key=key
                )
            except ConflictError:
                assert dawdle, "only a lapsed lease may be refused"
                continue
            stored.append((judgment.pk, judgment.task_id, user.pk, created))
            if rng.random() < 0.2:
                again, created_again = judgment_submit(
                    assignment=assignment, annotator=user, choice=choice, idempotency_key=key
                )
                stored.append((again.pk, again.task_id, user.pk, created_again))
    finally:
        connection.close()
    return stored


def _run(
    *, n_annotators: int, n_tasks: int, overlap: int, lease_seconds: int = 900, dawdle: float = 0.0
) -> tuple[list[tuple], float]:
    owner = user_build("owner")
    project = project_build(
        owner=owner, overlap=overlap, max_overlap=max(overlap, 5), lease_seconds=lease_seconds
    )
    users = [user_build(f"annotator-{i}") for i in range(n_annotators)]
    for user in users:
        member_add(project=project, user=user)
    pairwise_tasks_build(project=project, n=n_tasks)
    barrier = threading.Barrier(n_annotators)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n_annotators) as pool:
        futures = [
            pool.submit(
                _annotate_until_done, project=project, user=user, barrier=barrier, dawdle=dawdle
            )
            for user in users
        ]
        stored = [row for future in futures for row in future.result()]
    return stored, time.perf_counter() - started


def _check_invariants(*, stored: list[tuple]) -> None:
    """Nothing over overlap, no duplicate, every created judgment stored exactly once."""
    created = [row for row in stored if row[3]]
    assert sorted(row[0] for row in created) == sorted(
        Judgment.objects.values_list("pk", flat=True)
    )
    retried = {row[0] for row in stored if not row[3]}
    assert retried <= {row[0] for row in created}  # retries returned the stored row
    per_task = Task.objects.annotate(n=Count("judgments"))
    assert all(t.done_count == t.n <= t.overlap_wanted for t in per_task)
    pairs = Judgment.objects.values("task", "annotator").annotate(n=Count("pk"))
    assert pairs.filter(n__gt=1).count() == 0


def _check(*, stored: list[tuple], n_tasks: int, overlap: int) -> None:
    _check_invariants(stored=stored)
    assert Judgment.objects.count() == n_tasks * overlap
    assert all(t.done_count == t.overlap_wanted for t in Task.objects.all())  # every task filled
    assert not Assignment.objects.filter(status=Assignment.Status.LEASED).exists()


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_fifty_annotators_on_postgres(require_postgres):
    n_annotators, n_tasks, overlap = 50, 100, 3
    stored, seconds = _run(n_annotators=n_annotators, n_tasks=n_tasks, overlap=overlap)
    _check(stored=stored, n_tasks=n_tasks, overlap=overlap)
    pairs = n_tasks * overlap
    print(
        f"\n{n_annotators} annotators, {pairs} next-task+submit pairs in {seconds:.2f}s: "
        f"{pairs / seconds:.0f} pairs/s ({2 * pairs / seconds:.0f} service calls/s, "
        f"final next-task calls returning None not counted)"
    )


@pytest.mark.parametrize(
    ("n_annotators", "n_tasks", "overlap"),
    [(8, 20, 2), (3, 30, 3)],  # the second needs every annotator on every task
)
@pytest.mark.django_db(transaction=True)
def test_a_few_annotators_on_any_database(n_annotators, n_tasks, overlap):
    stored, _ = _run(n_annotators=n_annotators, n_tasks=n_tasks, overlap=overlap)
    _check(stored=stored, n_tasks=n_tasks, overlap=overlap)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_leases_lapsing_under_load_never_overfill_a_task():
    stored, _ = _run(n_annotators=12, n_tasks=24, overlap=2, lease_seconds=1, dawdle=0.15)
    _check_invariants(stored=stored)
    assert Project.objects.get().tasks.filter(done_count__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_double_submit_stores_one_judgment():
    owner = user_build("owner")
    project = project_build(owner=owner)
    user = user_build("clicker")
    member_add(project=project, user=user)
    pairwise_tasks_build(project=project, n=1)
    assignment = task_next_for_annotator(project=project, annotator=user)
    barrier = threading.Barrier(6)

    def click(key: str | None) -> tuple[int, bool]:
        try:
            barrier.wait()
            judgment, created = judgment_submit(
                assignment=assignment, annotator=user, choice="left", idempotency_key=key
            )
            return judgment.pk, created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(click, ["k", "k", "k", None, None, "other"]))
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Judgment.objects.count() == 1
    assert Task.objects.get().done_count == 1
