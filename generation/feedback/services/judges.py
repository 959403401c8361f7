"""Writes for judges: one row (and one AI annotator account) per distinct configuration.

A judge's identity is a hash of everything that can change its labels (kind, model,
constitution version, callable, settings), so asking twice for the same judge gives
the same row and its labels accumulate under one annotator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from annotation.models import AnnotatorProfile, Project
from annotation.services.projects import annotator_user_get_or_create
from generation import ownership
from generation import selectors as generation_selectors
from generation.feedback.judges import JudgeError
from generation.feedback.judges.constitutional import ConstitutionalSettings
from generation.feedback.judges.programmatic import resolve
from generation.feedback.models import ConstitutionVersion, Judge
from generation.feedback.services.constitutions import constitution_default_get_or_create
from generation.models import ModelVersion
from prefloop.exceptions import ApplicationError, ConflictError

Kind = Judge.Kind
NEEDS_MODEL = "a {kind} judge needs a model version"
NEEDS_CALLABLE = "a programmatic judge needs the dotted path of a scoring function"
SPEC_UNKNOWN = (
    "unknown judge {spec!r}; use constitutional, programmatic:package.module.function "
    "or reward-model:MODEL_VERSION"
)
NAME_TAKEN = "the judge name {name!r} is taken by a judge with another configuration"
SCORE_SETTINGS = {"temperature"}


def judge_get_or_create(
    *,
    kind: str,
    model_version: ModelVersion | None = None,
    constitution_version: ConstitutionVersion | None = None,
    callable_path: str = "",
    settings: dict | None = None,
    name: str = "",
    created_by: AbstractBaseUser | None = None,
    allowed_prefixes: Sequence[str] | None = None,
    project: Project | None = None,
) -> Judge:
    """The judge of ``project`` (site-wide without one) with this configuration, made
    (with its AI annotator) if new. Its model and constitution must be ones the project
    sees (its own or site-wide).

    ``allowed_prefixes`` limits which modules a programmatic judge may come from (the
    API passes the server's list; operators at the command line may name any).
    """
    if kind not in Kind.values:
        raise ApplicationError(f"unknown judge kind {kind!r}; expected one of {Kind.values}")
    if kind in (Kind.CONSTITUTIONAL, Kind.REVISION) and constitution_version is None:
        constitution_version = constitution_default_get_or_create()
    for part in (model_version, constitution_version and constitution_version.constitution):
        if part is not None:
            ownership.check_owned_by(part, project=project)
    settings = _settings_checked(kind=kind, settings=settings or {})
    _parts_checked(kind=kind, model_version=model_version, callable_path=callable_path,
                   allowed_prefixes=allowed_prefixes)
    if kind not in (Kind.CONSTITUTIONAL, Kind.REVISION):
        constitution_version = None
    if kind != Kind.PROGRAMMATIC:
        callable_path = ""
    digest = _config_hash(kind, model_version, constitution_version, callable_path, settings,
                          project)
    existing = Judge.objects.filter(config_hash=digest).first()
    if existing is not None:
        return existing
    name = name or _default_name(kind, model_version, constitution_version, callable_path, digest)
    try:
        return _judge_store(kind=kind, name=name, model_version=model_version,
                            constitution_version=constitution_version,
                            callable_path=callable_path, settings=settings, digest=digest,
                            created_by=created_by, project=project)
    except IntegrityError:
        existing = Judge.objects.filter(config_hash=digest).first()
        if existing is None:
            raise ConflictError(NAME_TAKEN.format(name=name)) from None
        return existing


def judge_from_spec(
    *, spec: str, model_version: ModelVersion | None = None,
    constitution_version: ConstitutionVersion | None = None, settings: dict | None = None,
    name: str = "", created_by: AbstractBaseUser | None = None,
    allowed_prefixes: Sequence[str] | None = None, project: Project | None = None,
) -> Judge:
    """A judge (of ``project``, else site-wide) from the command line's spelling:
    ``constitutional``, ``programmatic:package.module.function`` or
    ``reward-model:MODEL_VERSION``."""
    head, _, rest = spec.partition(":")
    common = {"settings": settings, "name": name, "created_by": created_by, "project": project}
    if head == "constitutional" and not rest:
        return judge_get_or_create(kind=Kind.CONSTITUTIONAL, model_version=model_version,
                                   constitution_version=constitution_version, **common)
    if head == "programmatic" and rest:
        return judge_get_or_create(kind=Kind.PROGRAMMATIC, callable_path=rest,
                                   allowed_prefixes=allowed_prefixes, **common)
    if head in ("reward-model", "reward_model") and rest:
        version = generation_selectors.model_version_get(name=rest, project=project)
        return judge_get_or_create(kind=Kind.REWARD_MODEL, model_version=version, **common)
    raise ApplicationError(SPEC_UNKNOWN.format(spec=spec))


def revision_judge_get_or_create(
    *, model_version: ModelVersion, constitution_version: ConstitutionVersion,
    project: Project | None = None,
) -> Judge:
    """The annotator under which CAI revision pairs get their (revision ≻ original) verdict."""
    return judge_get_or_create(
        kind=Kind.REVISION, model_version=model_version, constitution_version=constitution_version,
        project=project,
    )


def _settings_checked(*, kind: str, settings: dict) -> dict:
    if not isinstance(settings, dict):
        raise ApplicationError("judge settings must be a JSON object")
    if kind == Kind.CONSTITUTIONAL:
        try:
            return asdict(ConstitutionalSettings.from_dict(settings))
        except (JudgeError, TypeError, ValueError) as exc:
            raise ApplicationError(f"constitutional judge settings: {exc}") from exc
    if kind in (Kind.PROGRAMMATIC, Kind.REWARD_MODEL):
        unknown = sorted(set(settings) - SCORE_SETTINGS)
        if unknown:
            raise ApplicationError(f"unknown {kind} judge setting(s) {unknown}")
        temperature = settings.get("temperature", 1.0 if kind == Kind.REWARD_MODEL else None)
        if temperature is not None and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or temperature <= 0
        ):
            raise ApplicationError("temperature must be a positive number (or null)")
        return {"temperature": temperature}
    return {}


def _parts_checked(
    *, kind: str, model_version: ModelVersion | None, callable_path: str,
    allowed_prefixes: Sequence[str] | None,
) -> None:
    if kind in (Kind.CONSTITUTIONAL, Kind.REWARD_MODEL, Kind.REVISION) and model_version is None:
        raise ApplicationError(NEEDS_MODEL.format(kind=kind))
    if kind == Kind.PROGRAMMATIC:
        if not callable_path:
            raise ApplicationError(NEEDS_CALLABLE)
        try:
            resolve(callable_path, allowed_prefixes=allowed_prefixes)
        except JudgeError as exc:
            raise ApplicationError(str(exc)) from exc


def _config_hash(kind, model_version, constitution_version, callable_path, settings,
                 project) -> str:
    data = {
        "kind": kind,
        "model_version": model_version.pk if model_version else None,
        "constitution_version": constitution_version.pk if constitution_version else None,
        "callable": callable_path,
        "settings": settings,
    }
    if project is not None:  # site-wide judges keep the hashes they had before owners
        data["project"] = project.pk
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _default_name(kind, model_version, constitution_version, callable_path, digest) -> str:
    what = (
        callable_path.replace(":", ".").rsplit(".", 1)[-1]
        if callable_path
        else model_version.name if model_version else ""
    )
    if constitution_version is not None:
        what += f"-{constitution_version.constitution.name}-v{constitution_version.number}"
    return slugify(f"{kind}-{what}")[:88].strip("-") + f"-{digest[:8]}"


@transaction.atomic
def _judge_store(*, kind, name, model_version, constitution_version, callable_path, settings,
                 digest, created_by, project) -> Judge:
    # A project's judges get their own account names; an existing account (a person's,
    # or another owner's judge) is never taken over.
    username = (f"ai-{project.slug}-{name}" if project is not None else f"ai-{name}")[:150]
    if get_user_model().objects.filter(username=username).exists():
        raise ConflictError(NAME_TAKEN.format(name=name))
    annotator = annotator_user_get_or_create(
        username=username, kind=AnnotatorProfile.Kind.AI,
        config={"judge": name, "kind": kind},
    )
    return Judge.objects.create(
        name=name, kind=kind, model_version=model_version,
        constitution_version=constitution_version, callable_path=callable_path,
        settings=settings, config_hash=digest, annotator=annotator, created_by=created_by,
        project=project,
    )
