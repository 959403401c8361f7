"""Reads and writes for the People and profile pages: members with their recent
activity, and a person's own API token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import Feedback, Judgment, Membership, Project

RECENT_DAYS = 7


@dataclass(frozen=True)
class MemberRow:
    membership: Membership
    verdicts: int
    verdicts_recent: int
    last_active: datetime | None


def _activity(model, *, project: Project, since: datetime) -> dict[int, dict]:
    rows = (
        model.objects.filter(task__project=project)
        .values("annotator_id")
        .annotate(n=Count("pk"), recent=Count("pk", filter=Q(created_at__gte=since)),
                  last=Max("created_at"))
    )
    return {row["annotator_id"]: row for row in rows}


def member_rows(*, project: Project) -> list[MemberRow]:
    """Every member with their role, verdict counts (all time and the last
    ``RECENT_DAYS`` days) and when they last gave one: two grouped queries."""
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    judged = _activity(Judgment, project=project, since=since)
    rated = _activity(Feedback, project=project, since=since)
    members = Membership.objects.filter(project=project).select_related("user")
    rows = []
    for membership in members.order_by("role", "user__username"):
        parts = [p for p in (judged.get(membership.user_id), rated.get(membership.user_id)) if p]
        lasts = [p["last"] for p in parts if p["last"]]
        rows.append(MemberRow(
            membership=membership, verdicts=sum(p["n"] for p in parts),
            verdicts_recent=sum(p["recent"] for p in parts),
            last_active=max(lasts) if lasts else None,
        ))
    return rows


def token_get(*, user: AbstractBaseUser) -> Token | None:
    return Token.objects.filter(user=user).first()


@transaction.atomic
def token_rotate(*, user: AbstractBaseUser) -> Token:
    """A new token for ``user``; the old one (if any) stops working at once."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user)


def token_revoke(*, user: AbstractBaseUser) -> bool:
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
