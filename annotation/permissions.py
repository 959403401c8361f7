"""Who may do what in a project; the APIs and pages call these before any work.

Rules: a non-member gets 404 (a project's existence is not revealed to outsiders);
a member without the needed role gets 403. Owners configure the project and its
members; owners and reviewers read quality reports and the leaderboard (which
name annotators and models); every member may annotate and read their own progress.

Creating a project is a Django permission, ``annotation.add_project``: staff have it
by default, the "Project creators" group carries it, and
``PREFLOOP_OPEN_PROJECT_CREATION`` opens it to everyone signed in.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from annotation.models import Membership, Project
from annotation.selectors import projects

ANY_ROLE = tuple(Membership.Role.values)
QUALITY_READERS = (Membership.Role.OWNER, Membership.Role.REVIEWER)
CONFIGURERS = (Membership.Role.OWNER,)

ROLE_REQUIRED = "This needs one of the roles: {roles}."


def project_get_for_member(
    *, slug: str, user: AbstractBaseUser, roles: tuple[str, ...] = ANY_ROLE
) -> tuple[Project, Membership]:
    membership = projects.membership_get(slug=slug, user=user)
    if membership is None:
        raise Http404("No such project.")
    if membership.role not in roles:
        raise PermissionDenied(ROLE_REQUIRED.format(roles=", ".join(roles)))
    return membership.project, membership


def user_may_create_project(*, user: AbstractBaseUser) -> bool:
    """Staff, holders of ``annotation.add_project``, or anyone signed in when
    ``PREFLOOP_OPEN_PROJECT_CREATION`` is on."""
    if not user.is_authenticated or not user.is_active:
        return False
    return (
        settings.PREFLOOP_OPEN_PROJECT_CREATION
        or bool(user.is_staff)
        or user.has_perm("annotation.add_project")
    )
