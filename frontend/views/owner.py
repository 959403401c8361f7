"""Owner and reviewer pages: dashboard, jobs, leaderboard, rounds.

They name annotators and models, so they need a quality-reader role (owner or
reviewer); a non-member gets 404 and an annotator 403 (``annotation.permissions``).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation import permissions
from annotation.models import Membership, Project
from annotation.selectors import leaderboard as leaderboard_selectors
from annotation.selectors import quality as quality_selectors
from frontend import charts, selectors
from frontend import jobs as job_selectors

METRIC_TITLES = {"loss": "Loss", "reward_accuracy": "Reward accuracy",
                 "reward_margin": "Reward margin", "kl": "KL to reference"}  # fmt: skip


def _readable(request: HttpRequest, slug: str) -> tuple[Project, Membership]:
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.QUALITY_READERS
    )


def _page(request: HttpRequest, template: str, membership: Membership, **context) -> HttpResponse:
    context |= {"project": membership.project, "membership": membership,
                "is_owner": membership.role == Membership.Role.OWNER}  # fmt: skip
    return render(request, template, context)


@require_GET
@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    report = quality_selectors.quality_report(project=project)
    flow = selectors.throughput(project=project)
    days = [(day.strftime("%b %d"), n) for day, n in flow.days]
    return _page(
        request, "frontend/owner/dashboard.html", membership,
        counts=selectors.project_counts(project=project), report=report, flow=flow,
        bias_chart=charts.position_bias_chart(report.position_bias),
        flow_chart=charts.column_chart(days, title="Human verdicts per day"),
        annotators=selectors.annotator_table(report=report),
    )  # fmt: skip


@require_GET
@login_required
def leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    rows = leaderboard_selectors.leaderboard_get(project=project)
    return _page(request, "frontend/owner/leaderboard.html", membership, rows=rows,
                 chart=charts.rating_chart(rows))  # fmt: skip


@require_GET
@login_required
def rounds(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    all_series = job_selectors.run_series(project=project)
    runs = [{"run": series, "charts": _metric_charts(f"run{series.run_id}", series.metrics)}
            for series in all_series]  # fmt: skip
    summary = _metric_charts("rounds", job_selectors.round_summary(all_series))
    return _page(request, "frontend/owner/rounds.html", membership, runs=runs,
                 summary=summary if len(all_series) > 1 else [])  # fmt: skip


def _metric_charts(prefix: str, metrics: dict) -> list[tuple[str, charts.LineChart]]:
    return [
        (f"{prefix}-{key}", charts.line_chart(title=METRIC_TITLES.get(key, key), series=values))
        for key, values in metrics.items()
    ]


@require_GET
@login_required
def jobs(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    sections = job_selectors.job_sections(project=project)
    return _page(request, "frontend/owner/jobs.html", membership, sections=sections)


@require_GET
@login_required
def jobs_fragment(request: HttpRequest, slug: str) -> HttpResponse:
    """The jobs tables alone; the jobs page polls this every few seconds."""
    project, membership = _readable(request, slug)
    sections = job_selectors.job_sections(project=project)
    return _page(request, "frontend/owner/_jobs_tables.html", membership, sections=sections)
