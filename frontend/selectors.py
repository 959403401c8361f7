"""Reads the pages need that no app selector offers: project cards, counts,
throughput, the annotator table. Everything here only reads (jobs and training
runs: ``frontend.jobs``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import Assignment, Feedback, Judgment, Project, Prompt, Response, Task
from annotation.selectors import projects as project_selectors
from annotation.selectors import tasks as task_selectors
from annotation.selectors.tasks import Progress


@dataclass(frozen=True)
class ProjectCard:
    project: Project
    role: str
    progress: Progress

    @property
    def percent_done(self) -> int:
        wanted = self.progress.project_slots_wanted
        return round(100 * self.progress.project_slots_done / wanted) if wanted else 0


def project_cards(*, user: AbstractBaseUser) -> list[ProjectCard]:
    """The user's projects with their own progress and the project's completion;
    archived projects only for their owners."""
    return [
        ProjectCard(
            project=project,
            role=project.my_role,
            progress=task_selectors.progress_for_annotator(project=project, annotator=user),
        )
        for project in project_selectors.project_list_for_user(user=user)
        if project.archived_at is None or project.my_role == "owner"
    ]


def project_counts(*, project: Project) -> dict[str, int]:
    tasks = Task.objects.filter(project=project).aggregate(
        pairwise=Count("pk", filter=Q(kind=Task.Kind.PAIRWISE)),
        binary=Count("pk", filter=Q(kind=Task.Kind.BINARY)),
        gold=Count("pk", filter=Q(is_gold=True)),
        complete=Count("pk", filter=Q(done_count__gte=F("overlap_wanted"))),
    )
    judgments = Judgment.objects.filter(task__project=project).aggregate(
        human=Count("pk", filter=Q(source=Judgment.Source.HUMAN)),
        ai=Count("pk", filter=Q(source=Judgment.Source.AI)),
        imported=Count("pk", filter=Q(source=Judgment.Source.IMPORTED)),
    )
    return {
        "prompts": Prompt.objects.filter(project=project).count(),
        "responses": Response.objects.filter(prompt__project=project).count(),
        "pairwise_tasks": tasks["pairwise"],
        "binary_tasks": tasks["binary"],
        "gold_tasks": tasks["gold"],
        "complete_tasks": tasks["complete"],
        "judgments_human": judgments["human"],
        "judgments_ai": judgments["ai"],
        "judgments_imported": judgments["imported"],
        "feedback": Feedback.objects.filter(task__project=project).count(),
        "leases_live": Assignment.objects.filter(
            task__project=project, status=Assignment.Status.LEASED, expires_at__gt=timezone.now()
        ).count(),
    }


@dataclass(frozen=True)
class Throughput:
    days: list[tuple[date, int]]
    last_hour: int
    last_day: int


def throughput(*, project: Project, days: int = 14) -> Throughput:
    """Human verdicts (judgments and thumbs) per day over the last ``days`` days."""
    now = timezone.now()
    start = (now - timedelta(days=days - 1)).date()
    per_day: dict[date, int] = {}
    recent = {"hour": 0, "day": 0}
    for model in (Judgment, Feedback):
        rows = model.objects.filter(
            task__project=project, source="human", created_at__date__gte=start
        )
        for row in rows.annotate(day=TruncDate("created_at")).values("day").annotate(n=Count("pk")):
            per_day[row["day"]] = per_day.get(row["day"], 0) + row["n"]
        recent["hour"] += rows.filter(created_at__gte=now - timedelta(hours=1)).count()
        recent["day"] += rows.filter(created_at__gte=now - timedelta(days=1)).count()
    series = [(start + timedelta(days=i), per_day.get(start + timedelta(days=i), 0))
              for i in range(days)]
    return Throughput(days=series, last_hour=recent["hour"], last_day=recent["day"])


@dataclass(frozen=True)
class AnnotatorRow:
    username: str
    pairwise: int
    thumbs: int
    consensus: float | None
    kappa: float | None
    gold: str
    gold_accuracy: float | None
    median_s_pairwise: float | None
    median_s_thumbs: float | None
    left_share: float | None
    bias_p: float | None


def annotator_table(*, report) -> list[AnnotatorRow]:
    """One row per annotator from a ``quality.QualityReport``."""
    pairwise = {a.username: a for a in report.pairwise.annotators}
    binary = {a.username: a for a in report.binary.annotators}
    gold = {g.username: g for g in report.gold}
    bias = {b.username: b for b in report.position_bias if b.annotator_id is not None}
    times = {(t.kind, t.username): t.median_ms / 1000 for t in report.time_on_task
             if t.annotator_id is not None}
    rows = []
    for name in sorted(set(pairwise) | set(binary) | set(gold)):
        p, g, b = pairwise.get(name), gold.get(name), bias.get(name)
        rows.append(AnnotatorRow(
            username=name, pairwise=p.n_verdicts if p else 0,
            thumbs=binary[name].n_verdicts if name in binary else 0,
            consensus=p.consensus_agreement if p else None,
            kappa=p.mean_cohen_kappa if p else None,
            gold=f"{g.n_correct}/{g.n_gold}" if g else "",
            gold_accuracy=g.accuracy if g else None,
            median_s_pairwise=times.get(("pairwise", name)),
            median_s_thumbs=times.get(("binary", name)),
            left_share=b.left_share if b else None, bias_p=b.p_value if b else None,
        ))
    return rows
