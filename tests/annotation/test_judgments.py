from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Feedback, Judgment, Project, Task
from annotation.services import judgments as services
from annotation.services.assignment import task_next_for_annotator
from prefloop.exceptions import ApplicationError, ConflictError, PermissionError_
from tests.annotation import (
    binary_tasks_build,
    member_add,
    pairwise_tasks_build,
    project_build,
    user_build,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def users(db):
    return [user_build(name) for name in ("owner", "ann0", "ann1", "ann2")]


@pytest.fixture
def project(users) -> Project:
    project = project_build(owner=users[0], overlap=1, binary_enabled=True, strength_levels=3)
    for user in users[1:]:
        member_add(project=project, user=user)
    return project


def _lease(project, user, kind=Task.Kind.PAIRWISE) -> Assignment:
    return task_next_for_annotator(project=project, annotator=user, kind=kind)


def _expire(assignment):
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_same_key_twice_stores_one_judgment(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    first, created = services.judgment_submit(
        assignment=assignment, annotator=users[1], choice="left", strength=2, idempotency_key="k1"
    )
    again, created_again = services.judgment_submit(
        assignment=assignment, annotator=users[1], choice="left", strength=2, idempotency_key="k1"
    )
    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert Judgment.objects.count() == 1
    task.refresh_from_db()
    assert task.done_count == 1
    assert first.idempotency_key == f"{users[1].pk}:k1"  # namespaced per annotator


def test_a_retry_without_a_key_returns_the_stored_judgment(project, users):
    pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    first, _ = services.judgment_submit(assignment=assignment, annotator=users[1], choice="a")
    again, created = services.judgment_submit(assignment=assignment, annotator=users[1], choice="b")
    assert (again.pk, again.choice, created) == (first.pk, "a", False)


def test_a_key_reused_for_another_task_is_a_conflict_and_writes_nothing(project, users):
    project.overlap = 1
    pairwise_tasks_build(project=project, n=2)
    first = _lease(project, users[1])
    services.judgment_submit(assignment=first, annotator=users[1], choice="a", idempotency_key="k")
    second = _lease(project, users[1])
    with pytest.raises(ConflictError, match="idempotency key"):
        services.judgment_submit(
            assignment=second, annotator=users[1], choice="a", idempotency_key="k"
        )
    assert Judgment.objects.count() == 1
    assert Assignment.objects.get(pk=second.pk).status == Assignment.Status.LEASED
    assert Task.objects.get(pk=second.task_id).done_count == 0


def test_keys_of_different_annotators_never_collide(project, users):
    pairwise_tasks_build(project=project, n=1, overlap=2)
    for user in users[1:3]:
        assignment = _lease(project, user)
        _, created = services.judgment_submit(
            assignment=assignment, annotator=user, choice="a", idempotency_key="same"
        )
        assert created


def test_a_twin_that_won_the_race_is_returned_and_our_writes_roll_back(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    twin = Judgment.objects.create(task=task, annotator=users[1], choice="b", shown_left="a")
    judgment, created = services.judgment_submit(
        assignment=assignment, annotator=users[1], choice="a"
    )
    assert (judgment.pk, created) == (twin.pk, False)
    task.refresh_from_db()
    assert task.done_count == 0  # the bump was rolled back with the failed insert


@pytest.mark.parametrize(
    ("settings_", "choice", "strength", "message"),
    [
        ({"allow_tie": False}, "tie", 1, "not allowed"),
        ({"allow_both_bad": False}, "both_bad", 1, "not allowed"),
        ({}, "a", 4, "Strength"),
        ({}, "a", 0, "Strength"),
        ({}, "sideways", 1, "not allowed"),
    ],
)
def test_choices_are_checked_against_the_project(
    project, users, settings_, choice, strength, message
):
    Project.objects.filter(pk=project.pk).update(**settings_)
    project.refresh_from_db()
    pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    with pytest.raises(ApplicationError, match=message):
        services.judgment_submit(
            assignment=assignment, annotator=users[1], choice=choice, strength=strength
        )
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.LEASED


def test_ties_carry_no_strength(project, users):
    pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    judgment, _ = services.judgment_submit(
        assignment=assignment, annotator=users[1], choice="tie", strength=3, rationale="same"
    )
    assert (judgment.choice, judgment.strength, judgment.rationale) == ("tie", 0, "same")


def test_an_expired_lease_is_honoured_while_the_slot_is_free(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    _expire(assignment)
    judgment, created = services.judgment_submit(
        assignment=assignment, annotator=users[1], choice="a"
    )
    assert created
    assert Assignment.objects.get(pk=assignment.pk).status == Assignment.Status.DONE
    task.refresh_from_db()
    assert task.done_count == 1


def test_an_expired_lease_whose_slot_was_taken_is_refused(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1)
    slow = _lease(project, users[1])
    _expire(slow)
    fast = _lease(project, users[2])
    assert fast.task_id == task.pk
    with pytest.raises(ConflictError, match="expired"):
        services.judgment_submit(assignment=slow, annotator=users[1], choice="a")
    assert Judgment.objects.count() == 0
    services.judgment_submit(assignment=fast, annotator=users[2], choice="a")
    task.refresh_from_db()
    assert task.done_count == 1


def test_skipped_and_foreign_assignments_are_refused(project, users):
    pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    with pytest.raises(PermissionError_):
        services.judgment_submit(assignment=assignment, annotator=users[2], choice="a")
    Assignment.objects.filter(pk=assignment.pk).update(status=Assignment.Status.SKIPPED)
    with pytest.raises(ConflictError, match="skipped"):
        services.judgment_submit(assignment=assignment, annotator=users[1], choice="a")


def test_done_count_never_passes_overlap(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1, overlap=2)
    assignment = _lease(project, users[1])
    Task.objects.filter(pk=task.pk).update(overlap_wanted=1, done_count=1)  # owner lowered it
    with pytest.raises(ConflictError, match="all the verdicts"):
        services.judgment_submit(assignment=assignment, annotator=users[1], choice="a")
    assert Judgment.objects.count() == 0


def test_judges_without_a_lease_use_the_task_and_respect_overlap(project, users):
    (task,) = pairwise_tasks_build(project=project, n=1, overlap=1)
    judgment, created = services.judgment_submit(
        task=task, annotator=users[1], choice="b", shown_left="b", source="ai", soft_label=0.2
    )
    assert created and judgment.shown_left == "b" and judgment.source == "ai"
    with pytest.raises(ConflictError):
        services.judgment_submit(task=task, annotator=users[2], choice="a")
    with pytest.raises(ApplicationError, match="left"):
        services.judgment_submit(task=task, annotator=users[2], choice="left")
    assert services.judgment_submit(task=task, annotator=users[1], choice="a")[1] is False


def test_side_mapping_round_trips():
    for left_is_a in (True, False):
        for side in ("left", "right", "tie", "both_bad"):
            choice = services.side_to_choice(side=side, left_is_a=left_is_a)
            shown_left = "a" if left_is_a else "b"
            assert services.choice_to_side(choice=choice, shown_left=shown_left) == side


def test_feedback_is_idempotent_and_counts_once(project, users):
    (task,) = binary_tasks_build(project=project, n=1, overlap=2)
    assignment = _lease(project, users[1], kind=Task.Kind.BINARY)
    first, created = services.feedback_submit(
        assignment=assignment, annotator=users[1], thumbs_up=False, idempotency_key="f"
    )
    again, created_again = services.feedback_submit(
        assignment=assignment, annotator=users[1], thumbs_up=False, idempotency_key="f"
    )
    assert (created, created_again, first.pk) == (True, False, again.pk)
    assert first.response_id == task.response_a_id and first.task_id == task.pk
    task.refresh_from_db()
    assert task.done_count == 1
    assert Feedback.objects.count() == 1


def test_feedback_needs_a_binary_task(project, users):
    pairwise_tasks_build(project=project, n=1)
    assignment = _lease(project, users[1])
    with pytest.raises(ApplicationError, match="binary"):
        services.feedback_submit(assignment=assignment, annotator=users[1], thumbs_up=True)
