"""Writes for feedback jobs: create (freezing the items), cancel, retry. The runner is
``generation.feedback.runner``; jobs go to the ``gpu`` queue after commit."""

from __future__ import annotations

import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Project
from generation import ownership
from generation.backends.base import MAX_SEED, InvalidSamplingError, SamplingConfig
from generation.feedback import selectors
from generation.feedback.models import ConstitutionVersion, CritiqueTrace, FeedbackJob, Judge
from generation.feedback.services.constitutions import constitution_default_get_or_create
from generation.feedback.store import DEFAULT_MIN_CONFIDENCE
from generation.models import ModelVersion
from prefloop import jobs as prefloop_jobs
from prefloop.exceptions import ApplicationError

Status = FeedbackJob.Status
NOTHING_TO_DO = "no {what} of this project match the selection"
SCOPE_UNKNOWN = "unknown scope {scope!r}; expected one of {scopes}"
SCOPE_NEEDS = "scope {scope!r} needs {what}"
REVISION_JUDGE = "revision judges label only the pairs that critique jobs make"
BATCH_SIZE = "batch_size must be between 1 and 10000"
ROUNDS = "rounds must be between 1 and 16"
OUTCOMES = (CritiqueTrace.Outcome.COMPARISON, CritiqueTrace.Outcome.SFT)
MIN_CONFIDENCE = "min_confidence must be between 0 and 1"
NOT_RETRYABLE = "only failed or cancelled jobs can be retried"


class NothingSelectedError(ApplicationError):
    """No item of the project matches a job's selection (HTTP 400, like any ApplicationError)."""


@transaction.atomic
def feedback_job_create(
    *, project: Project, judge: Judge, scope: str = "all", min_agreement: float = 0.75,
    generation_job_id: int | None = None, task_ids: list[int] | None = None, split: str = "",
    limit: int | None = None, batch_size: int = 64, takes_human_slot: bool = True,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE, created_by: AbstractBaseUser | None = None,
    enqueue: bool = True,
) -> FeedbackJob:
    """Label the chosen comparisons with ``judge``.

    ``min_confidence``: labels less sure than this (0..1, see ``judges.base``) are not
    stored as verdicts; those comparisons, and any whose label flips with the order of
    the responses, go to the human queue.

    ``takes_human_slot``: a confident AI verdict fills one of the task's wanted
    verdicts (it labels *instead of* a human). With False the judge adds its own slot,
    so humans still give every verdict the project wants (audits, trust reports).
    """
    ownership.check_owned_by(judge, project=project)
    if judge.kind == Judge.Kind.REVISION:
        raise ApplicationError(REVISION_JUDGE)
    _scope_checked(scope=scope, generation_job_id=generation_job_id, task_ids=task_ids)
    _batch_checked(batch_size)
    if not 0 <= min_confidence <= 1:
        raise ApplicationError(MIN_CONFIDENCE)
    selection = {"scope": scope, "min_agreement": min_agreement, "split": split,
                 "generation_job_id": generation_job_id, "limit": limit}
    ids = selectors.comparison_ids_select(project=project, judge=judge, task_ids=task_ids,
                                          **selection)
    if not ids:
        raise NothingSelectedError(NOTHING_TO_DO.format(what="unlabelled comparisons"))
    options = {"takes_human_slot": takes_human_slot, "min_confidence": min_confidence}
    return _job_store(
        project=project, kind=FeedbackJob.Kind.JUDGE, judge=judge, selection=selection,
        item_ids=ids, options=options, batch_size=batch_size,
        seed=int(judge.settings.get("seed", 0) or 0), created_by=created_by, enqueue=enqueue,
    )


@transaction.atomic
def critique_job_create(
    *, project: Project, model_version: ModelVersion,
    constitution_version: ConstitutionVersion | None = None, rounds: int = 1,
    outcome: str = "comparison", sampling: dict | None = None, tags: list[str] | None = None,
    split: str = "", response_ids: list[int] | None = None, limit: int | None = None,
    seed: int | None = None, batch_size: int = 32, takes_human_slot: bool = True,
    created_by: AbstractBaseUser | None = None, enqueue: bool = True,
) -> FeedbackJob:
    """Critique and revise the chosen responses for ``rounds`` rounds (CAI: T = 1).

    ``outcome``: ``comparison`` makes (revision vs original) tasks with an AI verdict
    for the revision; ``sft`` keeps the revision as a supervised example only.
    """
    if not 1 <= rounds <= 16:
        raise ApplicationError(ROUNDS)
    if outcome not in OUTCOMES:
        raise ApplicationError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
    if outcome == "comparison" and not project.pairwise_enabled:
        raise ApplicationError("this project does not enable pairwise comparisons; use 'sft'")
    _batch_checked(batch_size)
    version = constitution_version or constitution_default_get_or_create()
    ownership.check_owned_by(model_version, project=project)
    ownership.check_owned_by(version.constitution, project=project)
    sampling_data = _sampling_checked(sampling)
    selection = {"tags": list(tags or []), "split": split, "limit": limit}
    ids = selectors.response_ids_select(project=project, response_ids=response_ids, **selection)
    if not ids:
        raise NothingSelectedError(NOTHING_TO_DO.format(what="responses"))
    seed = secrets.randbelow(MAX_SEED) if seed is None else seed
    options = {"rounds": rounds, "outcome": outcome, "sampling": sampling_data,
               "takes_human_slot": takes_human_slot}
    return _job_store(
        project=project, kind=FeedbackJob.Kind.CRITIQUE, model_version=model_version,
        constitution_version=version, selection=selection, item_ids=ids, options=options,
        batch_size=batch_size, seed=seed, created_by=created_by, enqueue=enqueue,
    )


def feedback_job_cancel(*, job: FeedbackJob) -> FeedbackJob:
    """A pending job is cancelled at once; a running one stops before its next batch."""
    return prefloop_jobs.cancel(FeedbackJob, job.pk)


@transaction.atomic
def feedback_job_retry(*, job: FeedbackJob) -> FeedbackJob:
    """Run a failed or cancelled job again: it continues after the last stored batch."""
    job = FeedbackJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (Status.FAILED, Status.CANCELLED):
        raise ApplicationError(NOT_RETRYABLE)
    job.status, job.error, job.cancel_requested, job.finished_at = Status.PENDING, "", False, None
    job.save(update_fields=["status", "error", "cancel_requested", "finished_at"])
    prefloop_jobs.enqueue(job)
    return job


def _job_store(*, enqueue: bool, **fields) -> FeedbackJob:
    job = FeedbackJob.objects.create(total=len(fields["item_ids"]), **fields)
    if enqueue:
        prefloop_jobs.enqueue(job)  # to the ``gpu`` queue after commit
    return job


def _scope_checked(*, scope: str, generation_job_id: int | None, task_ids) -> None:
    if scope not in selectors.SCOPES:
        raise ApplicationError(SCOPE_UNKNOWN.format(scope=scope, scopes=selectors.SCOPES))
    if scope == "generation_job" and generation_job_id is None:
        raise ApplicationError(SCOPE_NEEDS.format(scope=scope, what="a generation job id"))
    if scope == "tasks" and not task_ids:
        raise ApplicationError(SCOPE_NEEDS.format(scope=scope, what="task ids"))


def _batch_checked(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ApplicationError(BATCH_SIZE)
    if not 1 <= batch_size <= 10_000:
        raise ApplicationError(BATCH_SIZE)


def _sampling_checked(sampling: dict | None) -> dict:
    data = {"temperature": 1.0, "max_tokens": 48, **(sampling or {})}
    try:
        config = SamplingConfig.from_dict(data)
    except (InvalidSamplingError, TypeError) as exc:
        raise ApplicationError(str(exc)) from exc
    if config.n != 1:
        raise ApplicationError("critique sampling takes one sample per step (n = 1)")
    return config.to_dict()
