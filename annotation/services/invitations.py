"""Invitations: how someone becomes an owner or reviewer of a project with consent.

An owner invites a username to a role; the person signed in under that username
accepts (and becomes a member with that role) or declines. An invitation is made the
same way whether or not the account exists, so inviting reveals nothing about which
usernames are taken; it can only ever be accepted by that username, once, before it
expires (``PREFLOOP_INVITATION_DAYS``). Unknown, foreign, used and expired tokens
all answer "not found".
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import Invitation, Membership, Project
from annotation.services.projects import LAST_OWNER, member_set
from prefloop.exceptions import ApplicationError, NotFoundError

NOT_FOUND = "No such invitation."


def invitation_create(
    *, project: Project, inviter: AbstractBaseUser, username: str, role: str
) -> Invitation:
    """Invite ``username`` to ``project`` as ``role`` (any role; owners and reviewers can
    join no other way unless staff add them)."""
    if role not in Membership.Role.values:
        raise ApplicationError(f"unknown role {role!r}; one of {Membership.Role.values}")
    return Invitation.objects.create(
        project=project, username=username, role=role, inviter=inviter,
        token=secrets.token_urlsafe(32),
        expires_at=timezone.now() + timedelta(days=settings.PREFLOOP_INVITATION_DAYS),
    )


def _pending() -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        accepted_at__isnull=True, declined_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("project", "inviter")


def invitation_list_for_project(*, project: Project) -> QuerySet[Invitation]:
    """The project's invitations still waiting for an answer."""
    return _pending().filter(project=project)


def invitation_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Invitation]:
    """Invitations addressed to ``user`` still waiting for an answer."""
    return _pending().filter(username=user.get_username())


def _addressed(*, token: str, user: AbstractBaseUser) -> Invitation:
    invitation = (
        _pending().select_for_update(of=("self",))
        .filter(token=token, username=user.get_username())
        .first()
    )
    if invitation is None:
        raise NotFoundError(NOT_FOUND)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    """``user`` accepts: they become a member with the invited role (a role they held
    before is replaced; the last owner cannot step down this way either)."""
    invitation = _addressed(token=token, user=user)
    project = invitation.project
    if invitation.role != Membership.Role.OWNER:
        owners = list(
            Membership.objects.select_for_update()
            .filter(project=project, role=Membership.Role.OWNER)
            .values_list("user_id", flat=True)
        )
        if owners == [user.pk]:
            raise ApplicationError(LAST_OWNER)
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    return member_set(project=project, user=user, role=invitation.role)


@transaction.atomic
def invitation_decline(*, token: str, user: AbstractBaseUser) -> Invitation:
    invitation = _addressed(token=token, user=user)
    invitation.declined_at = timezone.now()
    invitation.save(update_fields=["declined_at"])
    return invitation
