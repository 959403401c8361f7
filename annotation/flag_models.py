"""A reviewer's or owner's mark that a judgment is bad: the next export leaves it out.

Flags are never deleted: clearing one records who cleared it and when, so the history
of who flagged what stays on the item's page.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class JudgmentFlag(models.Model):
    judgment = models.ForeignKey(
        "annotation.Judgment", on_delete=models.CASCADE, related_name="flags"
    )
    flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one open flag per judgment; cleared ones stay as history.
            models.UniqueConstraint(
                fields=["judgment"],
                condition=Q(cleared_at__isnull=True),
                name="judgment_flag_one_open",
            )
        ]
