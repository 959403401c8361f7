"""Writes for constitutions. A version is never edited: a change is a new version, so
every AI label keeps pointing at the exact principles it was made with."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from annotation.models import Project
from generation.feedback import selectors
from generation.feedback.constitution import (
    DEFAULT_DESCRIPTION,
    DEFAULT_NAME,
    DEFAULT_PRINCIPLES,
    ConstitutionError,
    PrincipleSpec,
    principles_validate,
)
from generation.feedback.models import Constitution, ConstitutionVersion, Principle
from prefloop.exceptions import ApplicationError, ConflictError

NAME_TAKEN = "A constitution named {name!r} already exists; add a version to it instead."
UNCHANGED = "These principles are the same as version {number}; no new version was made."


@transaction.atomic
def constitution_create(
    *,
    name: str,
    principles: Sequence[dict],
    description: str = "",
    note: str = "",
    created_by: AbstractBaseUser | None = None,
    project: Project | None = None,
) -> ConstitutionVersion:
    """A new constitution of ``project`` (site-wide without one) and its version 1."""
    specs = _checked(principles)
    if Constitution.objects.filter(name=name, project=project).exists():
        raise ConflictError(NAME_TAKEN.format(name=name))
    try:
        with transaction.atomic():
            constitution = Constitution.objects.create(
                name=name, description=description, created_by=created_by, project=project
            )
    except IntegrityError:  # a concurrent twin took the name
        raise ConflictError(NAME_TAKEN.format(name=name)) from None
    return _version_store(constitution=constitution, number=1, specs=specs, note=note,
                          created_by=created_by)


@transaction.atomic
def constitution_version_create(
    *,
    constitution: Constitution,
    principles: Sequence[dict],
    note: str = "",
    created_by: AbstractBaseUser | None = None,
) -> ConstitutionVersion:
    """The next version of ``constitution``; the same principles again are refused."""
    specs = _checked(principles)
    locked = Constitution.objects.select_for_update().get(pk=constitution.pk)
    latest = locked.versions.order_by("-number").first()
    if latest is not None and selectors.principle_specs(version=latest) == specs:
        raise ApplicationError(UNCHANGED.format(number=latest.number))
    number = (locked.versions.aggregate(top=Max("number"))["top"] or 0) + 1
    return _version_store(constitution=locked, number=number, specs=specs, note=note,
                          created_by=created_by)


@transaction.atomic
def constitution_default_get_or_create() -> ConstitutionVersion:
    """Prefloop's default constitution (helpfulness, honesty, harmlessness, concision):
    its latest version, made on first use."""
    constitution, created = Constitution.objects.get_or_create(
        name=DEFAULT_NAME, project=None, defaults={"description": DEFAULT_DESCRIPTION}
    )
    latest = constitution.versions.order_by("-number").first()
    if latest is not None:
        return latest
    return _version_store(constitution=constitution, number=1, specs=list(DEFAULT_PRINCIPLES),
                          note="Shipped with Prefloop.", created_by=None)


def _checked(principles: Sequence[dict]) -> list[PrincipleSpec]:
    try:
        return principles_validate(principles)
    except ConstitutionError as exc:
        raise ApplicationError(str(exc)) from exc


def _version_store(
    *, constitution: Constitution, number: int, specs: list[PrincipleSpec], note: str,
    created_by: AbstractBaseUser | None,
) -> ConstitutionVersion:
    version = ConstitutionVersion.objects.create(
        constitution=constitution, number=number, note=note, created_by=created_by
    )
    Principle.objects.bulk_create(
        Principle(version=version, position=i, **spec.as_dict()) for i, spec in enumerate(specs)
    )
    return version
