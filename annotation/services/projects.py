"""Writes for projects and their members."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from annotation.models import AnnotatorProfile, Membership, Project, Task
from annotation.permissions import user_may_create_project  # noqa: F401 (the owner console's)
from prefloop.exceptions import ApplicationError

User = get_user_model()


@transaction.atomic
def project_create(*, slug: str, name: str = "", owner: AbstractBaseUser, **options) -> Project:
    """Create a project with ``owner`` as its first owner. ``options`` are Project fields."""
    project = Project(slug=slug, name=name or slug, created_by=owner, **options)
    _project_validate(project)
    project.save()
    Membership.objects.create(project=project, user=owner, role=Membership.Role.OWNER)
    return project


@transaction.atomic
def member_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    """Add ``user`` to ``project`` with ``role``, or change the role they have."""
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def annotator_user_get_or_create(
    *, username: str, kind: str = AnnotatorProfile.Kind.HUMAN, config: dict | None = None
) -> AbstractBaseUser:
    """A user with an annotator profile; AI judges get an unusable password."""
    user, created = User.objects.get_or_create(username=username)
    if created and kind == AnnotatorProfile.Kind.AI:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    AnnotatorProfile.objects.update_or_create(
        user=user, defaults={"kind": kind, "config": config or {}}
    )
    return user


PROJECT_SETTINGS = (
    "name", "guidelines", "pairwise_enabled", "binary_enabled", "overlap", "max_overlap",
    "strength_levels", "allow_tie", "allow_both_bad", "lease_seconds", "exclude_own_responses",
    "allow_remote_images", "auto_round_threshold",
)
OVERLAP_ABOVE_MAX = "overlap ({overlap}) cannot exceed max_overlap ({max_overlap})."
NO_TASK_KIND = "Enable at least one task kind (pairwise or binary)."
# One answer for "no such user", "a superuser" and "a role that needs their consent", so
# that the answer never tells whether an account exists.
CANNOT_ADD = (
    "This user cannot be given this role directly; send them an invitation instead "
    "(owners and reviewers join by accepting one)."
)
ROLE_RANK = {Membership.Role.ANNOTATOR: 0, Membership.Role.REVIEWER: 1, Membership.Role.OWNER: 2}
LAST_OWNER = "A project needs at least one owner."


def _project_validate(project: Project) -> None:
    if project.overlap < 1 or project.overlap > project.max_overlap:
        raise ApplicationError(
            OVERLAP_ABOVE_MAX.format(overlap=project.overlap, max_overlap=project.max_overlap)
        )
    if not (project.pairwise_enabled or project.binary_enabled):
        raise ApplicationError(NO_TASK_KIND)


@transaction.atomic
def project_update(*, project: Project, data: dict[str, Any]) -> Project:
    """Change project settings. A new ``overlap`` also applies to existing tasks that
    still had the old one (never below the verdicts they already have); tasks raised
    by adaptive overlap keep their higher value."""
    unknown = set(data) - set(PROJECT_SETTINGS)
    if unknown:
        raise ValueError(f"not project settings: {sorted(unknown)}")
    old_overlap = project.overlap
    for field, value in data.items():
        setattr(project, field, value)
    _project_validate(project)
    project.save(update_fields=list(data) or None)
    if project.overlap != old_overlap:
        Task.objects.filter(project=project, overlap_wanted=old_overlap).update(
            overlap_wanted=Greatest(Value(project.overlap), F("done_count"))
        )
    return project


@transaction.atomic
def member_role_set(
    *, project: Project, username: str, role: str, by: AbstractBaseUser
) -> Membership:
    """Add a member by username or change their role, as ``by`` (an owner) asks.

    Without the person's consent only this is done directly: adding an annotator (the
    product's way to staff a project), lowering a member's role, and anything staff
    do. Raising someone to owner or reviewer needs an accepted invitation, and a
    superuser is never made a member silently. Refusals and unknown usernames get the
    same answer. The last owner cannot step down.
    """
    user = User.objects.filter(username=username).first()
    current = Membership.objects.filter(project=project, user=user).first() if user else None
    if user is None or not _direct_allowed(user=user, current=current, role=role, by=by):
        raise ApplicationError(CANNOT_ADD)
    owners = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Membership.Role.OWNER)
        .values_list("user_id", flat=True)
    )
    if role != Membership.Role.OWNER and owners == [user.pk]:
        raise ApplicationError(LAST_OWNER)
    return member_set(project=project, user=user, role=role)


def _direct_allowed(
    *, user: AbstractBaseUser, current: Membership | None, role: str, by: AbstractBaseUser
) -> bool:
    if user.is_superuser and current is None and user.pk != by.pk:
        return False
    if by.is_staff:
        return True
    held = ROLE_RANK[current.role] if current is not None else -1
    return role == Membership.Role.ANNOTATOR or ROLE_RANK[role] <= held


MEMBER_UNKNOWN = "That user is not a member of this project."


@transaction.atomic
def member_remove(*, project: Project, user: AbstractBaseUser) -> None:
    """Remove ``user`` from ``project`` (their verdicts stay); never the last owner."""
    owners = list(
        Membership.objects.select_for_update()
        .filter(project=project, role=Membership.Role.OWNER)
        .values_list("user_id", flat=True)
    )
    if owners == [user.pk]:
        raise ApplicationError(LAST_OWNER)
    deleted, _ = Membership.objects.filter(project=project, user=user).delete()
    if not deleted:
        raise ApplicationError(MEMBER_UNKNOWN)


@transaction.atomic
def project_archive_set(*, project: Project, archived: bool) -> Project:
    """Archive a project (it leaves annotators' lists) or bring it back."""
    project.archived_at = timezone.now() if archived else None
    project.save(update_fields=["archived_at"])
    return project
