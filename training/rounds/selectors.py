"""Reads for rounds: lists, a round's tasks and samples, label coverage, the results table."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, QuerySet

from annotation.models import Project, Task
from generation.backends import SamplingConfig
from generation.jobs import sampling_key
from generation.models import GeneratedSample, GenerationJob
from prefloop.exceptions import NotFoundError
from training.rounds.models import Round

TABLE_STEPS = ("generate", "label", "wait", "export", "train", "evaluate")


def round_list(*, project: Project) -> QuerySet[Round]:
    return Round.objects.filter(project=project).select_related(
        "policy", "reference", "new_version", "initial_version", "judge", "eval_judge"
    )


def round_get(*, project: Project, index: int) -> Round:
    rnd = round_list(project=project).filter(index=index).first()
    if rnd is None:
        raise NotFoundError(f"no round {index} in {project.slug}")
    return rnd


def job_samples(*, job: GenerationJob) -> QuerySet[GeneratedSample]:
    """Every sample a generation job stands for, including ones an earlier job with the
    same model, seed and sampling already made (a job re-uses those instead of redoing)."""
    key = sampling_key(SamplingConfig.from_dict(job.sampling))
    return GeneratedSample.objects.filter(
        prompt_id__in=job.prompt_ids, model_version=job.model_version,
        seed=job.sampling["seed"], sampling_key=key,
    ).select_related("prompt", "response")


def round_task_ids(*, rnd: Round) -> list[int]:
    """The tasks made from the round's candidates: pairs of them, or (thumbs) each one."""
    if rnd.generation_job is None:
        return []
    made = list(job_samples(job=rnd.generation_job).values_list("response_id", flat=True))
    tasks = Task.objects.filter(project=rnd.project, response_a_id__in=made)
    if rnd.label_kind == Round.LabelKind.THUMBS:
        tasks = tasks.filter(kind=Task.Kind.BINARY)
    else:
        tasks = tasks.filter(kind=Task.Kind.PAIRWISE, response_b_id__in=made)
    return list(tasks.order_by("pk").values_list("pk", flat=True))


def round_response_ids(*, rnd: Round) -> set[int]:
    if rnd.generation_job is None:
        return set()
    return set(job_samples(job=rnd.generation_job).values_list("response_id", flat=True))


def tasks_uncovered(*, task_ids: list[int]) -> list[int]:
    """Tasks that still want verdicts (fewer than their overlap)."""
    return list(
        Task.objects.filter(pk__in=task_ids, done_count__lt=F("overlap_wanted"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class TableRow:
    index: int
    policy: str
    new_version: str
    status: str
    accuracy_before: float | None
    accuracy: float | None
    win_rate: float | None
    win_low: float | None
    win_high: float | None
    kl: float | None
    mean_tokens: float | None
    mean_tokens_before: float | None
    seconds: dict[str, float | None]


def round_table(*, project: Project) -> list[TableRow]:
    """One row per round: what the demo loop prints and the rounds page plots."""
    rows = []
    for rnd in round_list(project=project).order_by("index"):
        m = rnd.metrics
        win = m.get("win_rate") or {}
        ci = win.get("ci_bootstrap") or win.get("ci_wilson") or [None, None]
        rows.append(TableRow(
            index=rnd.index, policy=_name(rnd.policy), status=rnd.status,
            new_version=_name(rnd.new_version) if rnd.new_version else "",
            accuracy_before=(m.get("accuracy_before") or {}).get("value"),
            accuracy=(m.get("accuracy") or {}).get("value"),
            win_rate=win.get("value"), win_low=ci[0], win_high=ci[1],
            kl=(m.get("kl") or {}).get("value"),
            mean_tokens=(m.get("length") or {}).get("mean_tokens"),
            mean_tokens_before=(m.get("length_before") or {}).get("mean_tokens"),
            seconds={s: (rnd.timings.get(s) or {}).get("seconds") for s in TABLE_STEPS},
        ))
    return rows


def _name(version) -> str:
    return f"{version.name} (v{version.version})"
