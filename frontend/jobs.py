"""Reads for the jobs area and the rounds view: generation, AI-feedback and training
jobs with their progress and errors, and the metric series of training runs.

Job kinds are looked up by model name, so a kind (AI-feedback jobs, rounds) shows
up as soon as its model lands, with no change to the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.apps import apps

from annotation.models import Project
from prefloop.jobs import JobStatus

ACTIVE_STATUSES = {JobStatus.PENDING, JobStatus.RUNNING}  # every job kind spells them so
METRIC_KEYS = ("loss", "reward_accuracy", "reward_margin", "kl")


@dataclass(frozen=True)
class JobRow:
    kind: str
    id: int
    title: str
    status: str
    done: int
    total: int
    detail: str = ""
    error: str = ""
    created_at: object = None
    finished_at: object = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.total)) if self.total else 0


@dataclass
class JobSection:
    key: str
    title: str
    available: bool
    rows: list[JobRow] = field(default_factory=list)


def _model(app_label: str, name: str):
    try:
        return apps.get_model(app_label, name)
    except LookupError:
        return None


def _generation_rows(project: Project, limit: int) -> list[JobRow]:
    from generation.selectors import generation_job_list, generation_job_progress

    rows = []
    for job in generation_job_list(project=project)[:limit]:
        progress = generation_job_progress(job=job)
        n = job.sampling.get("n", "?")
        detail = f"{progress['tokens_per_second']} tok/s" if job.output_tokens else ""
        if progress["eta_seconds"] is not None:
            detail += f" · ETA {round(progress['eta_seconds'])} s"
        rows.append(JobRow(
            kind="generation", id=job.pk, status=job.status, done=job.done, total=job.total,
            title=f"{job.model_version.name} · {n} samples · {job.pairing} pairs "
                  f"· {job.tasks_created} tasks",
            detail=detail, error=job.error, created_at=job.created_at,
            finished_at=job.finished_at,
        ))
    return rows


def _feedback_rows(model, project: Project, limit: int) -> list[JobRow]:
    """AI-feedback jobs (``generation.FeedbackJob``): judge labelling or critique-revise."""
    rows = []
    for job in model.objects.filter(project=project).select_related(
        "judge", "model_version"
    )[:limit]:
        by = job.judge or job.model_version
        if job.kind == "critique":
            detail = f"{job.revisions} revisions"
        else:
            detail = f"{job.labelled} labelled · {job.routed} to humans · {job.skipped} skipped"
        rows.append(JobRow(
            kind="ai-feedback", id=job.pk, status=job.status, done=job.done, total=job.total,
            title=f"{job.get_kind_display()}{f' · {by}' if by else ''}", detail=detail,
            error=job.error, created_at=job.created_at, finished_at=job.finished_at,
        ))
    return rows


def _training_rows(project: Project, limit: int) -> list[JobRow]:
    from training.selectors import training_run_list

    rows = []
    for run in training_run_list(project=project)[:limit]:
        rows.append(JobRow(
            kind="training", id=run.pk, status=run.status, done=run.step,
            total=run.total_steps,
            title=f"{run.algorithm.upper()} · {run.policy.name} → {run.output_name}",
            detail=f"snapshot {run.snapshot.content_hash[:12]}", error=run.error,
            created_at=run.created_at, finished_at=run.finished_at,
        ))
    return rows


def job_sections(*, project: Project, limit: int = 20) -> list[JobSection]:
    feedback_model = _model("generation", "FeedbackJob")
    return [
        JobSection("generation", "Generation jobs", True, _generation_rows(project, limit)),
        JobSection(
            "ai-feedback",
            "AI-feedback jobs",
            feedback_model is not None,
            _feedback_rows(feedback_model, project, limit) if feedback_model else [],
        ),
        JobSection("training", "Training jobs", True, _training_rows(project, limit)),
    ]


@dataclass(frozen=True)
class RunSeries:
    run_id: int
    title: str
    status: str
    # metric name -> {"train": [(step, value)], "eval": [(step, value)]}
    metrics: dict[str, dict[str, list[tuple[int, float]]]]


def run_series(*, project: Project, limit: int = 12) -> list[RunSeries]:
    """Each training run's logged metrics, oldest run first (a round per run for now)."""
    from training.models import TrainingMetric
    from training.selectors import training_run_list

    runs = list(training_run_list(project=project)[:limit])[::-1]
    records: dict[int, list] = {run.pk: [] for run in runs}
    for run_id, kind, step, values in TrainingMetric.objects.filter(
        run_id__in=records, kind__in=("train", "eval")
    ).values_list("run_id", "kind", "step", "values"):
        records[run_id].append((kind, step, values))
    return [
        RunSeries(
            run.pk,
            f"Run {run.pk}: {run.algorithm.upper()} {run.policy.name} → {run.output_name}",
            run.status,
            _metric_series(records[run.pk]),
        )
        for run in runs
    ]


def round_summary(runs: list[RunSeries]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Per metric, each run's last value (held-out when logged, else training) by run order."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for index, run in enumerate(runs, start=1):
        for key, series in run.metrics.items():
            for kind in ("eval", "train"):
                if series[kind]:
                    out.setdefault(key, {"train": [], "eval": []})[kind].append(
                        (index, series[kind][-1][1])
                    )
    return out


def _metric_series(records: list) -> dict[str, dict[str, list[tuple[int, float]]]]:
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for key in METRIC_KEYS:
        series = {"train": [], "eval": []}
        for kind, step, values in records:
            value = values.get(key) if isinstance(values, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                series[kind].append((step, float(value)))
        if series["train"] or series["eval"]:
            out[key] = {k: sorted(v) for k, v in series.items()}
    return out
