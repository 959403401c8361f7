"""The owner field's help text and the per-owner name constraint shared by the model
registry, constitutions and judges (each belongs to a project, or is site-wide)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

OWNER_HELP = "The project that owns it; empty for a site-wide one (managed by staff)."


def name_unique_per_owner(model: str) -> list[models.UniqueConstraint]:
    """``name`` is unique within its project, and among the site-wide rows."""
    return [
        models.UniqueConstraint(fields=["project", "name"], name=f"{model}_name_in_project"),
        models.UniqueConstraint(
            fields=["name"], condition=Q(project__isnull=True), name=f"{model}_name_site_wide"
        ),
    ]
