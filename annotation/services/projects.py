"""Writes for projects and their members."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import AnnotatorProfile, Membership, Project

User = get_user_model()


@transaction.atomic
def project_create(*, slug: str, name: str = "", owner: AbstractBaseUser, **options) -> Project:
    """Create a project with ``owner`` as its first owner. ``options`` are Project fields."""
    project = Project.objects.create(slug=slug, name=name or slug, created_by=owner, **options)
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
