"""Reads for AI feedback: constitutions, judges, jobs, and which items a job works on."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone

from annotation.models import Judgment, Project, Response, Task
from annotation.selectors import agreement
from generation import ownership
from generation import selectors as generation_selectors
from generation.feedback.constitution import PrincipleSpec
from generation.feedback.models import (
    Constitution,
    ConstitutionVersion,
    CritiqueTrace,
    FeedbackJob,
    FeedbackLabel,
    Judge,
)
from generation.models import GeneratedSample, GenerationJob
from prefloop.exceptions import NotFoundError

SCOPES = ("all", "unlabelled", "low_agreement", "human_labelled", "generation_job", "tasks")


def constitution_list(*, project: Project | None = None) -> QuerySet[Constitution]:
    """The site-wide constitutions, and ``project``'s own when given (its own first)."""
    constitutions = Constitution.objects.prefetch_related("versions")
    if project is None:
        return constitutions.filter(project__isnull=True).order_by("name")
    return ownership.visible_to(constitutions, project=project)


def constitution_get(*, name: str, project: Project | None = None) -> Constitution:
    """The constitution ``name`` that ``project`` sees (site-wide only without one)."""
    constitution = ownership.visible_get(Constitution.objects.all(), name=name, project=project)
    if constitution is None:
        raise NotFoundError(f"no constitution named {name!r}")
    return constitution


def constitution_get_owned(*, name: str, project: Project | None) -> Constitution:
    """The constitution ``name`` that ``project`` itself owns (site-wide: None): what
    its owners (staff) may add versions to."""
    constitution = Constitution.objects.filter(name=name, project=project).first()
    if constitution is None:
        raise NotFoundError(f"no constitution named {name!r}")
    return constitution


def constitution_version_get(
    *, name: str, number: int | None = None, project: Project | None = None
) -> ConstitutionVersion:
    """Version ``number`` (or the latest) of the constitution ``name`` that ``project`` sees."""
    try:
        constitution = constitution_get(name=name, project=project)
    except NotFoundError:
        constitution = None
    versions = ConstitutionVersion.objects.select_related("constitution").filter(
        constitution=constitution
    )
    version = (
        versions.filter(number=number).first()
        if number is not None
        else versions.order_by("-number").first()
    )
    if version is None:
        what = f"version {number} of " if number is not None else ""
        raise NotFoundError(f"no {what}constitution named {name!r}")
    return version


def principle_specs(*, version: ConstitutionVersion) -> list[PrincipleSpec]:
    return [
        PrincipleSpec(key=p.key, name=p.name, critique_request=p.critique_request,
                      revision_request=p.revision_request,
                      comparison_question=p.comparison_question, weight=p.weight)
        for p in version.principles.order_by("position", "id")
    ]


def judge_list(*, project: Project | None = None) -> QuerySet[Judge]:
    """The site-wide judges, and ``project``'s own when given (its own first)."""
    judges = _judges()
    if project is None:
        return judges.filter(project__isnull=True).order_by("created_at", "id")
    return ownership.visible_to(judges, project=project)


def _judges() -> QuerySet[Judge]:
    return Judge.objects.select_related(
        "model_version", "constitution_version__constitution", "annotator"
    )


def judge_get(*, name: str, project: Project | None = None) -> Judge:
    """The judge ``name`` that ``project`` sees (site-wide only without one)."""
    judge = ownership.visible_get(_judges(), name=name, project=project)
    if judge is None:
        raise NotFoundError(f"no judge named {name!r}")
    return judge


def item_ids_check(
    *, project: Project, generation_job_id: int | None = None, task_ids=None, response_ids=None
) -> None:
    """404 unless every id a job request names belongs to ``project`` (another
    project's ids are "not found", like unknown ones)."""
    if generation_job_id is not None and not GenerationJob.objects.filter(
        pk=generation_job_id, project=project
    ).exists():
        raise NotFoundError(f"no generation job {generation_job_id} in this project")
    for model, ids, what in ((Task, task_ids, "tasks"), (Response, response_ids, "responses")):
        wanted = set(ids or [])
        where = {"project": project} if model is Task else {"prompt__project": project}
        if wanted and model.objects.filter(pk__in=wanted, **where).count() != len(wanted):
            raise NotFoundError(f"some {what} are not in this project")


def project_get_for_owner(*, slug: str, user: AbstractBaseUser) -> Project:
    return generation_selectors.project_get_for_owner(slug=slug, user=user)


def feedback_job_list(*, project: Project) -> QuerySet[FeedbackJob]:
    return FeedbackJob.objects.filter(project=project).select_related("judge", "model_version")


def feedback_job_get_for_owner(*, job_id: int, user: AbstractBaseUser) -> FeedbackJob:
    job = (
        FeedbackJob.objects.select_related("project", "judge", "model_version")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        raise Http404("No such feedback job.")
    project_get_for_owner(slug=job.project.slug, user=user)
    return job


def feedback_job_progress(*, job: FeedbackJob) -> dict:
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.done / elapsed if elapsed > 0 and job.done else 0.0
    running = job.status == FeedbackJob.Status.RUNNING
    return {
        "done": job.done,
        "total": job.total,
        "fraction": round(job.done / job.total, 4) if job.total else 0.0,
        "elapsed_seconds": round(elapsed, 2),
        "items_per_second": round(rate, 2),
        "engine_fraction": round(job.engine_seconds / elapsed, 4) if elapsed > 0 else None,
        "eta_seconds": round((job.total - job.done) / rate, 1) if running and rate else None,
    }


def critique_trace_list(*, project: Project, job: FeedbackJob | None = None):
    traces = CritiqueTrace.objects.filter(prompt__project=project)
    if job is not None:
        traces = traces.filter(job=job)
    return traces.select_related("constitution_version__constitution", "model_version").order_by(
        "pk"
    )


def comparison_ids_select(
    *, project: Project, judge: Judge, scope: str = "all", min_agreement: float = 0.75,
    generation_job_id: int | None = None, task_ids: list[int] | None = None, split: str = "",
    limit: int | None = None,
) -> list[int]:
    """Pairwise tasks of ``project`` this judge has not labelled yet, narrowed by ``scope``:

    ``all``; ``unlabelled`` (no verdict from anyone); ``low_agreement`` (two or more
    verdicts whose most common answer has a share below ``min_agreement``);
    ``human_labelled`` (a human has judged it: what a trust audit needs);
    ``generation_job`` (both responses came from that generation job: a round's new
    candidates); ``tasks`` (the ids given).
    """
    tasks = Task.objects.filter(project=project, kind=Task.Kind.PAIRWISE).exclude(
        Exists(FeedbackLabel.objects.filter(judge=judge, task=OuterRef("pk")))
    )
    if split:
        tasks = tasks.filter(prompt__split=split)
    if scope == "unlabelled":
        tasks = tasks.exclude(Exists(Judgment.objects.filter(task=OuterRef("pk"))))
    elif scope == "human_labelled":
        human = Judgment.objects.filter(task=OuterRef("pk"), source=Judgment.Source.HUMAN)
        tasks = tasks.filter(Exists(human))
    elif scope == "generation_job":
        made = GeneratedSample.objects.filter(job_id=generation_job_id).values("response_id")
        tasks = tasks.filter(response_a_id__in=made, response_b_id__in=made)
    elif scope == "tasks":
        tasks = tasks.filter(pk__in=task_ids or [])
    ids = list(tasks.order_by("pk").values_list("pk", flat=True))
    if scope == "low_agreement":
        shares = agreement.task_majority_shares(project=project)
        counts = _verdict_counts(ids)
        ids = [pk for pk in ids if counts.get(pk, 0) >= 2 and shares.get(pk, 1.0) < min_agreement]
    return ids[:limit] if limit else ids


def _verdict_counts(task_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for task_id in Judgment.objects.filter(task_id__in=task_ids).values_list("task_id", flat=True):
        counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def response_ids_select(
    *, project: Project, tags: list[str] | None = None, split: str = "",
    response_ids: list[int] | None = None, limit: int | None = None,
) -> list[int]:
    """Responses to critique: generated or imported ones (not earlier revisions) of the
    prompts that match ``tags`` (any of them) and ``split``, or exactly ``response_ids``."""
    responses = Response.objects.filter(prompt__project=project).exclude(
        source=Response.Source.REVISION
    )
    if response_ids is not None:
        responses = responses.filter(pk__in=response_ids)
    if split:
        responses = responses.filter(prompt__split=split)
    wanted = set(tags or [])
    rows = responses.order_by("pk").values_list("pk", "prompt__tags")
    ids = [pk for pk, prompt_tags in rows if not wanted or wanted & set(prompt_tags or [])]
    return ids[:limit] if limit else ids
