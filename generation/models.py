"""Model registry: every model the platform can load, and where it came from."""

from __future__ import annotations

from django.db import models


class ModelVersion(models.Model):
    """A loadable model: a local Hugging Face folder or a hub id.

    The base model of a lineage is version 0 with no parent; every training run
    registers its output as a child of the policy it started from.
    """

    name = models.SlugField(max_length=100, unique=True)
    source = models.CharField(
        max_length=500, help_text="Local path of a Hugging Face model folder, or a hub id."
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    version = models.PositiveIntegerField(default=0)
    round_index = models.PositiveIntegerField(null=True, blank=True)
    notes = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"
