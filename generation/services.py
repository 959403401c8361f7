"""Writes for the model registry."""

from __future__ import annotations

from django.db import transaction

from generation.models import ModelVersion


@transaction.atomic
def model_version_register(
    *,
    name: str,
    source: str,
    parent: ModelVersion | None = None,
    round_index: int | None = None,
    notes: str = "",
    metadata: dict | None = None,
) -> ModelVersion:
    """Register a model, or return the existing one with the same name and source.

    Idempotent so that a retried task or a second ``build_demo_model`` never
    creates a duplicate; a different source under a taken name is an error.
    """
    existing = ModelVersion.objects.select_for_update().filter(name=name).first()
    if existing is not None:
        if existing.source != source:
            raise ValueError(
                f"model name {name!r} is already registered for {existing.source!r}"
            )
        return existing
    version = 0 if parent is None else parent.version + 1
    return ModelVersion.objects.create(
        name=name,
        source=source,
        parent=parent,
        version=version,
        round_index=round_index,
        notes=notes,
        metadata=metadata or {},
    )
