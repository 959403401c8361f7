import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Membership, Task
from annotation.selectors.tasks import assigned_task_view
from annotation.services import assignment as services
from annotation.services.judgments import judgment_submit
from prefloop.exceptions import ApplicationError, ConflictError, PermissionError_
from tests.annotation import member_add, pairwise_tasks_build, project_build, user_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(db):
    return user_build("owner")


@pytest.fixture
def annotators(db):
    return [user_build(f"ann{i}") for i in range(4)]


@pytest.fixture
def project(owner, annotators):
    project = project_build(owner=owner, overlap=2)
    for user in annotators:
        member_add(project=project, user=user)
    return project


def _next(project, user, kind=Task.Kind.PAIRWISE):
    return services.task_next_for_annotator(project=project, annotator=user, kind=kind)


def test_reloading_returns_the_same_lease(project, annotators):
    pairwise_tasks_build(project=project, n=3)
    first = _next(project, annotators[0])
    again = _next(project, annotators[0])
    assert first.pk == again.pk
    assert Assignment.objects.count() == 1


def test_overlap_is_honoured_and_leases_count_as_slots(project, annotators):
    (task,) = pairwise_tasks_build(project=project, n=1)
    assert _next(project, annotators[0]).task_id == task.pk
    assert _next(project, annotators[1]).task_id == task.pk
    assert _next(project, annotators[2]) is None  # two live leases fill overlap 2


def test_an_annotator_never_gets_a_task_twice(project, annotators):
    (task,) = pairwise_tasks_build(project=project, n=1, overlap=5)
    assignment = _next(project, annotators[0])
    judgment_submit(assignment=assignment, annotator=annotators[0], choice="a")
    assert _next(project, annotators[0]) is None
    task.refresh_from_db()
    assert task.done_count == 1


def test_skip_frees_the_slot_and_is_never_offered_again(project, annotators):
    (task,) = pairwise_tasks_build(project=project, n=1, overlap=1)
    assignment = _next(project, annotators[0])
    assert _next(project, annotators[1]) is None
    services.assignment_skip(assignment=assignment, annotator=annotators[0])
    services.assignment_skip(assignment=assignment, annotator=annotators[0])  # no-op
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.SKIPPED
    assert _next(project, annotators[0]) is None
    assert _next(project, annotators[1]).task_id == task.pk


def test_skip_of_someone_elses_or_a_done_assignment_is_refused(project, annotators):
    pairwise_tasks_build(project=project, n=1)
    assignment = _next(project, annotators[0])
    with pytest.raises(PermissionError_):
        services.assignment_skip(assignment=assignment, annotator=annotators[1])
    judgment_submit(assignment=assignment, annotator=annotators[0], choice="a")
    with pytest.raises(ConflictError):
        services.assignment_skip(assignment=assignment, annotator=annotators[0])


def test_expired_leases_are_reclaimed(project, annotators):
    (task,) = pairwise_tasks_build(project=project, n=1, overlap=1)
    stale = _next(project, annotators[0])
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    fresh = _next(project, annotators[1])
    assert fresh.task_id == task.pk  # the lapsed lease freed its slot at once
    assert _next(project, annotators[0]) is None  # never the same task again
    # Relabelling is not on the hot path: it runs when nothing is found (just now)
    # and every RECLAIM_EVERY_SECONDS.
    assert Assignment.objects.get(pk=stale.pk).status == Assignment.Status.EXPIRED


def test_relabelling_lapsed_leases_is_throttled(project, annotators, monkeypatch):
    pairwise_tasks_build(project=project, n=3, overlap=1)
    monkeypatch.setattr(services, "_last_reclaim", 0.0)
    stale = _next(project, annotators[0])  # relabels (first call in a long while)
    Assignment.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _next(project, annotators[1]) is not None  # within the period: no relabelling
    assert Assignment.objects.get(pk=stale.pk).status == Assignment.Status.LEASED
    monkeypatch.setattr(services, "RECLAIM_EVERY_SECONDS", 0.0)
    assert _next(project, annotators[2]) is not None
    assert Assignment.objects.get(pk=stale.pk).status == Assignment.Status.EXPIRED


def test_lease_length_comes_from_the_project(project, annotators):
    project.lease_seconds = 60
    project.save()
    pairwise_tasks_build(project=project, n=1)
    before = timezone.now()
    assignment = _next(project, annotators[0])
    assert before + timedelta(seconds=59) <= assignment.expires_at
    assert assignment.expires_at <= timezone.now() + timedelta(seconds=60)


def test_own_responses_are_excluded_when_the_owner_asks(project, annotators):
    pairwise_tasks_build(project=project, n=1, author_a=annotators[0])
    assert _next(project, annotators[0]) is None
    project.exclude_own_responses = False
    project.save()
    assert _next(project, annotators[0]) is not None


def test_tasks_closest_to_completion_come_first(project, annotators):
    tasks = pairwise_tasks_build(project=project, n=3, overlap=3)
    Task.objects.filter(pk=tasks[2].pk).update(done_count=2)
    Task.objects.filter(pk=tasks[1].pk).update(done_count=1)
    assert _next(project, annotators[0]).task_id == tasks[2].pk
    assert _next(project, annotators[1]).task_id == tasks[1].pk  # tasks[2] is now full


def test_left_right_is_randomised_recorded_and_shown(project, annotators):
    tasks = pairwise_tasks_build(project=project, n=40, overlap=1)
    sides = set()
    for _ in tasks:
        assignment = _next(project, annotators[0])
        view = assigned_task_view(assignment=assignment)
        task = assignment.task
        expected_left = task.response_a.text if assignment.left_is_a else task.response_b.text
        assert view.left == expected_left
        judgment, _ = judgment_submit(assignment=assignment, annotator=annotators[0], choice="left")
        assert judgment.shown_left == ("a" if assignment.left_is_a else "b")
        assert judgment.choice == judgment.shown_left  # "left" resolved through the record
        sides.add(assignment.left_is_a)
    assert sides == {True, False}


def test_binary_tasks_and_disabled_kinds(project, annotators):
    with pytest.raises(ApplicationError):
        _next(project, annotators[0], kind=Task.Kind.BINARY)


def test_non_members_get_nothing(project):
    pairwise_tasks_build(project=project, n=1)
    with pytest.raises(PermissionError_):
        _next(project, user_build("stranger"))


def test_adaptive_overlap_raises_low_agreement_tasks_up_to_the_cap(project, annotators):
    project.max_overlap = 3
    project.save()
    split, unanimous = pairwise_tasks_build(project=project, n=2, overlap=2)
    for user, choices in zip(annotators[:2], [("a", "a"), ("b", "a")], strict=True):
        for task, choice in zip((split, unanimous), choices, strict=True):
            judgment_submit(task=task, annotator=user, choice=choice)
    assert services.task_overlap_adapt(project=project, min_agreement=0.75) == [split.pk]
    split.refresh_from_db()
    unanimous.refresh_from_db()
    assert (split.overlap_wanted, unanimous.overlap_wanted) == (3, 2)
    assert _next(project, annotators[2]).task_id == split.pk
    assert services.task_overlap_adapt(project=project, min_agreement=0.75) == []  # capped


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def test_next_plus_submit_is_a_constant_number_of_statements(
    owner, annotators, django_assert_max_num_queries, monkeypatch
):
    """Six statements for next-task + submit at the service level on PostgreSQL, seven on
    SQLite (no data-modifying CTE: the lease and the queue move are two), whatever the
    project size; nine per HTTP judgment with authentication and the assignment read.
    The relabelling of lapsed leases (every 30 s per process) is held off here.

    Transaction control is not counted: PostgreSQL sends none through the cursor,
    SQLite sends BEGIN IMMEDIATE / COMMIT, and the test's own transaction adds savepoints.
    """
    counts = []
    for n_tasks, slug in ((5, "small"), (300, "large")):
        project = project_build(owner=owner, slug=slug, overlap=3)
        member_add(project=project, user=annotators[0], role=Membership.Role.ANNOTATOR)
        pairwise_tasks_build(project=project, n=n_tasks, start=len(counts) * 1000)
        monkeypatch.setattr(services, "_last_reclaim", time.monotonic())
        with django_assert_max_num_queries(14) as queries:
            assignment = _next(project, annotators[0])
            judgment_submit(assignment=assignment, annotator=annotators[0], choice="a")
        work = [q["sql"] for q in queries.captured_queries]
        counts.append(len([sql for sql in work if not sql.startswith(TRANSACTION_CONTROL)]))
    assert counts[0] == counts[1] <= 7, counts
