"""Reads for projects and their members."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, QuerySet

from annotation.models import Membership, Project


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user is a member of, each annotated with ``my_role``."""
    return (
        Project.objects.filter(memberships__user=user)
        .annotate(my_role=F("memberships__role"))
        .order_by("slug")
    )


def membership_get(*, slug: str, user: AbstractBaseUser) -> Membership | None:
    return (
        Membership.objects.select_related("project").filter(project__slug=slug, user=user).first()
    )


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("role", "user__username")
