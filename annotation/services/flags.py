"""Flagging a judgment as bad (reviewers and owners): the next export leaves it out.

A flag keeps who raised it, why and when; clearing it keeps who cleared it and when.
At most one flag per judgment is open at a time (a partial unique constraint), so a
second flag on the same judgment returns the open one instead of a duplicate.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import Judgment, JudgmentFlag
from prefloop.exceptions import ApplicationError, NotFoundError

REASON_MAX = 2000


@transaction.atomic
def judgment_flag(*, judgment: Judgment, user: AbstractBaseUser, reason: str) -> JudgmentFlag:
    """Open a flag on ``judgment`` (or return the one already open)."""
    reason = reason.strip()
    if not reason:
        raise ApplicationError("Say why the judgment is bad (a reason is required).")
    if len(reason) > REASON_MAX:
        raise ApplicationError(f"The reason is longer than {REASON_MAX} characters.")
    open_flag = JudgmentFlag.objects.filter(judgment=judgment, cleared_at__isnull=True).first()
    if open_flag is not None:
        return open_flag
    try:
        with transaction.atomic():
            return JudgmentFlag.objects.create(judgment=judgment, flagged_by=user, reason=reason)
    except IntegrityError:  # a concurrent flag won the race: that one stands
        return JudgmentFlag.objects.get(judgment=judgment, cleared_at__isnull=True)


@transaction.atomic
def judgment_flag_clear(*, judgment: Judgment, user: AbstractBaseUser) -> JudgmentFlag:
    """Clear the open flag: the judgment counts again from the next export on."""
    flag = (
        JudgmentFlag.objects.select_for_update()
        .filter(judgment=judgment, cleared_at__isnull=True)
        .first()
    )
    if flag is None:
        raise NotFoundError("This judgment has no open flag.")
    flag.cleared_by, flag.cleared_at = user, timezone.now()
    flag.save(update_fields=["cleared_by", "cleared_at"])
    return flag
