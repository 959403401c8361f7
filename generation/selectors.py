"""Reads for the model registry and generation jobs."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone

from annotation import permissions
from annotation.models import Project, Prompt
from generation import ownership
from generation.models import GenerationJob, ModelVersion
from prefloop.exceptions import NotFoundError


def model_version_list(*, project: Project | None = None) -> QuerySet[ModelVersion]:
    """The site-wide model versions, and ``project``'s own when given (its own first)."""
    versions = ModelVersion.objects.select_related("parent")
    if project is None:
        return versions.filter(project__isnull=True).order_by("created_at", "id")
    return ownership.visible_to(versions, project=project)


def model_version_get(*, name: str, project: Project | None = None) -> ModelVersion:
    """The version called ``name`` that ``project`` sees (its own, else a site-wide one);
    without a project, a site-wide one. Anything else is "not found" (404)."""
    version = ownership.visible_get(
        ModelVersion.objects.select_related("parent"), name=name, project=project
    )
    if version is None:
        raise NotFoundError(f"no model version named {name!r}")
    return version


def project_get_for_owner(*, slug: str, user: AbstractBaseUser) -> Project:
    """404 for non-members, 403 for members who are not owners (annotation's rules)."""
    project, _ = permissions.project_get_for_member(
        slug=slug, user=user, roles=permissions.CONFIGURERS
    )
    return project


def generation_job_list(*, project: Project) -> QuerySet[GenerationJob]:
    return GenerationJob.objects.filter(project=project).select_related(
        "model_version", "opponent_version"
    )


def generation_job_get_for_owner(*, job_id: int, user: AbstractBaseUser) -> GenerationJob:
    job = GenerationJob.objects.select_related("project", "model_version").filter(pk=job_id).first()
    if job is None:
        raise Http404("No such generation job.")
    project_get_for_owner(slug=job.project.slug, user=user)
    return job


def prompt_ids_select(
    *, project: Project, tags: list[str] | None = None, split: str = "",
    lacking_candidates: bool = False,
) -> list[int]:
    """Prompt ids in creation order: any of ``tags`` (all prompts when none), one split,
    and with ``lacking_candidates`` only prompts with fewer than two responses."""
    prompts = Prompt.objects.filter(project=project)
    if split:
        prompts = prompts.filter(split=split)
    if lacking_candidates:
        prompts = prompts.annotate(candidates=Count("responses")).filter(candidates__lt=2)
    rows = prompts.order_by("id").values_list("id", "tags")
    # JSON containment is not portable to SQLite; tags are few, so filter here.
    wanted = set(tags or [])
    return [pk for pk, prompt_tags in rows if not wanted or wanted & set(prompt_tags or [])]


def generation_job_progress(*, job: GenerationJob) -> dict:
    """done / total, tokens per second (wall clock and engine), ETA in seconds."""
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
    rate = job.done / elapsed if elapsed > 0 and job.done else 0.0
    remaining = max(job.total - job.done, 0)
    running = job.status == GenerationJob.Status.RUNNING
    return {
        "done": job.done,
        "total": job.total,
        "fraction": round(job.done / job.total, 4) if job.total else 0.0,
        "elapsed_seconds": round(elapsed, 2),
        "output_tokens": job.output_tokens,
        "tokens_per_second": round(job.output_tokens / elapsed, 1) if elapsed > 0 else 0.0,
        "engine_tokens_per_second": (
            round(job.output_tokens / job.engine_seconds, 1) if job.engine_seconds else 0.0
        ),
        "eta_seconds": round(remaining / rate, 1) if running and rate else None,
    }
