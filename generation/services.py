"""Writes for the model registry and generation jobs (the job runner is in ``jobs.py``)."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from annotation.models import Project
from generation import ownership, pairing, selectors
from generation.backends.base import (
    MAX_SEED,
    InvalidSamplingError,
    ModelLoadError,
    SamplingConfig,
    check_model_source,
)
from generation.models import GenerationJob, ModelNameReservation, ModelVersion
from prefloop import jobs as prefloop_jobs
from prefloop.exceptions import ConflictError, InvalidInputError

NO_PROMPTS = "no prompts of this project match the selection"
OPPONENT_NEEDED = "head_to_head pairing needs an opponent model version different from the model"
OPPONENT_UNUSED = "an opponent model version is only used by head_to_head pairing"
TWO_SAMPLES = "{pairing} pairing needs n >= 2 samples per prompt"
PAIRWISE_OFF = "this project does not enable pairwise comparisons; use pairing 'none'"
JUDGE_UNKNOWN = (
    "best_vs_worst pairing needs a judge's scores; no scorer named {judge!r} is registered "
    "(see generation.pairing.scorer_register)"
)
BATCH_SIZE = "batch_size must be between 1 and 100000"


NAME_RESERVED = "the model name {name!r} is reserved for a training run's output"
NAME_TAKEN = "the model name {name!r} is already registered here"


@transaction.atomic
def model_version_register(
    *,
    name: str,
    source: str,
    parent: ModelVersion | None = None,
    round_index: int | None = None,
    notes: str = "",
    metadata: dict | None = None,
    project: Project | None = None,
    reserved: bool = False,
) -> ModelVersion:
    """Register a model in ``project`` (site-wide without one), or return the existing
    one with the same name and source there.

    Idempotent so that a retried task or a second ``build_demo_model`` never
    creates a duplicate; a different source under a taken name is an error, and so is a
    name a training run reserved, unless ``reserved`` (the run registering its output).
    """
    existing = ModelVersion.objects.select_for_update().filter(name=name, project=project).first()
    if existing is not None:
        if existing.source != source:
            raise ValueError(f"model name {name!r} is already registered for {existing.source!r}")
        return existing
    if project is not None:
        reservations = ModelNameReservation.objects.filter(project=project, name=name)
        if not reserved and reservations.exists():
            raise ValueError(NAME_RESERVED.format(name=name))
        reservations.delete()
    version = 0 if parent is None else parent.version + 1
    return ModelVersion.objects.create(
        project=project, name=name, source=source, parent=parent, version=version,
        round_index=round_index, notes=notes, metadata=metadata or {},
    )


@transaction.atomic
def model_version_name_reserve(*, project: Project, name: str) -> None:
    """Promise ``name`` to a training run's output in ``project``; 409 if the project
    already has (or has promised) a model by that name."""
    if ModelVersion.objects.filter(project=project, name=name).exists():
        raise ConflictError(NAME_TAKEN.format(name=name))
    _, created = ModelNameReservation.objects.get_or_create(project=project, name=name)
    if not created:
        raise ConflictError(NAME_RESERVED.format(name=name))


def model_version_register_checked(
    *, name: str, source: str, parent_name: str = "", round_index: int | None = None,
    notes: str = "", project: Project | None = None,
) -> ModelVersion:
    """What owners and staff call (API, ``register_model``): a local path must be a model
    folder, the parent one the owner sees, the name not taken (by another source) nor
    reserved."""
    try:
        check_model_source(source)
    except ModelLoadError as exc:
        raise InvalidInputError({"source": str(exc)}) from exc
    parent = (
        selectors.model_version_get(name=parent_name, project=project) if parent_name else None
    )
    try:
        return model_version_register(
            name=name, source=source, parent=parent, round_index=round_index, notes=notes,
            project=project,
        )
    except ValueError as exc:
        raise InvalidInputError({"name": str(exc)}) from exc


def sampling_checked(sampling: dict) -> dict:
    """Validated sampling parameters with defaults filled and a seed always chosen."""
    try:
        config = SamplingConfig.from_dict(dict(sampling))
    except (InvalidSamplingError, TypeError) as exc:
        raise InvalidInputError({"sampling": str(exc)}) from exc
    data = config.to_dict()
    if data["seed"] is None:  # chosen now, so that a re-run repeats the same samples
        data["seed"] = secrets.randbelow(MAX_SEED)
    return data


def _pairing_checked(
    *, project: Project, model_version: ModelVersion, opponent_version: ModelVersion | None,
    pairing_name: str, n: int, judge: str,
) -> None:
    P = GenerationJob.Pairing
    if pairing_name not in P.values:
        unknown = f"unknown pairing {pairing_name!r}; expected {P.values}"
        raise InvalidInputError({"pairing": unknown})
    if pairing_name != P.NONE and not project.pairwise_enabled:
        raise InvalidInputError({"pairing": PAIRWISE_OFF})
    if pairing_name == P.HEAD_TO_HEAD:
        if opponent_version is None or opponent_version.pk == model_version.pk:
            raise InvalidInputError({"opponent_version": OPPONENT_NEEDED})
    elif opponent_version is not None:
        raise InvalidInputError({"opponent_version": OPPONENT_UNUSED})
    if pairing_name in (P.RANDOM, P.ALL, P.BEST_VS_WORST) and n < 2:
        raise InvalidInputError({"sampling": TWO_SAMPLES.format(pairing=pairing_name)})
    if pairing_name == P.BEST_VS_WORST and judge not in pairing.SCORERS:
        raise InvalidInputError({"judge": JUDGE_UNKNOWN.format(judge=judge)})


@transaction.atomic
def generation_job_create(
    *,
    project: Project,
    model_version: ModelVersion,
    sampling: dict,
    pairing_name: str = GenerationJob.Pairing.RANDOM,
    opponent_version: ModelVersion | None = None,
    tags: list[str] | None = None,
    split: str = "",
    lacking_candidates: bool = False,
    batch_size: int = 256,
    judge: str = "",
    created_by=None,
    enqueue: bool = True,
) -> GenerationJob:
    """Freeze the prompt selection and enqueue the job on the ``gpu`` queue after commit."""
    for version in (model_version, opponent_version):
        if version is not None:
            ownership.check_owned_by(version, project=project)
    data = sampling_checked(sampling)
    _pairing_checked(
        project=project,
        model_version=model_version,
        opponent_version=opponent_version,
        pairing_name=pairing_name,
        n=data["n"],
        judge=judge,
    )
    if not 1 <= batch_size <= 100_000:
        raise InvalidInputError({"batch_size": BATCH_SIZE})
    selection = {"tags": list(tags or []), "split": split, "lacking_candidates": lacking_candidates}
    prompt_ids = selectors.prompt_ids_select(project=project, **selection)
    if not prompt_ids:
        raise InvalidInputError({"selection": NO_PROMPTS})
    versions = 2 if opponent_version is not None else 1
    job = GenerationJob.objects.create(
        project=project, model_version=model_version, opponent_version=opponent_version,
        selection=selection, prompt_ids=prompt_ids, sampling=data, pairing=pairing_name,
        judge=judge, batch_size=batch_size, total=len(prompt_ids) * versions,
        created_by=created_by,
    )
    if enqueue:
        prefloop_jobs.enqueue(job)  # to the ``gpu`` queue after commit
    return job


def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """A pending job is cancelled at once; a running one stops before its next batch."""
    return prefloop_jobs.cancel(GenerationJob, job.pk)
    job.cancel_requested = True
    fields = ["cancel_requested"]
    if job.status == GenerationJob.Status.PENDING:
        job.status, job.finished_at = GenerationJob.Status.CANCELLED, timezone.now()
        fields += ["status", "finished_at"]
    job.save(update_fields=fields)
    return job
