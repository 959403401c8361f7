"""Owner and reviewer pages: dashboard, jobs, leaderboard, rounds.

They name annotators and models, so they need a quality-reader role (owner or
reviewer); a non-member gets 404 and an annotator 403 (``annotation.permissions``).
"""

from __future__ import annotations

import base64

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation import permissions
from annotation.models import Membership, Project
from annotation.selectors import quality as quality_selectors
from annotation.services import leaderboard as leaderboard_services
from frontend import charts, selectors
from frontend import jobs as job_selectors
from frontend import leaderboard as leaderboard_display
from frontend.forms import RoundStartForm
from generation.feedback import conf as feedback_conf
from generation.feedback.judges import JudgeError
from generation.selectors import model_version_get, model_version_list
from prefloop.exceptions import ApplicationError
from training import defaults as training_defaults
from training.rounds import selectors as round_selectors
from training.rounds import services as round_services

METRIC_TITLES = {"loss": "Loss", "reward_accuracy": "Reward accuracy",
                 "reward_margin": "Reward margin", "kl": "KL to reference"}


def _readable(request: HttpRequest, slug: str) -> tuple[Project, Membership]:
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.QUALITY_READERS
    )


def _page(request: HttpRequest, template: str, membership: Membership, **context) -> HttpResponse:
    context |= {"project": membership.project, "membership": membership,
                "is_owner": membership.role == Membership.Role.OWNER}
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
    )


@require_GET
@login_required
def leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    board = leaderboard_services.leaderboard_cached(project=project)
    rows = leaderboard_display.board_rows(board.rows)
    return _page(request, "frontend/owner/leaderboard.html", membership, rows=rows,
                 intervals=board.intervals, chart=charts.rating_chart(rows),
                 min_games=settings.PREFLOOP_LEADERBOARD_MIN_GAMES)


@require_http_methods(["GET", "POST"])
@login_required
def rounds(request: HttpRequest, slug: str) -> HttpResponse:
    """Iterative rounds (table, plot, and for owners a form to start one), then the
    training runs' charts. Only owners may POST; a reviewer's POST is refused (403)."""
    project, membership = _readable(request, slug)
    is_owner = membership.role == Membership.Role.OWNER
    if request.method == "POST" and not is_owner:
        raise PermissionDenied("only project owners can start rounds")
    form, status = None, 200
    if is_owner:
        visible = model_version_list(project=project).order_by("name")
        policies = list(visible.values_list("name", flat=True).distinct())
        posted = request.method == "POST"
        form = RoundStartForm(request.POST if posted else None, policies=policies)
        form.default_lrs = _default_lrs(visible)
        if posted and _round_started(request, project=project, form=form):
            return redirect("frontend:rounds", slug=project.slug)
        status = 400 if form.errors else 200
    table = round_selectors.round_table(project=project)
    all_series = job_selectors.run_series(project=project)
    runs = [{"run": series, "charts": _metric_charts(f"run{series.run_id}", series.metrics)}
            for series in all_series]
    summary = _metric_charts("rounds", job_selectors.round_summary(all_series))
    context = {"project": project, "membership": membership, "is_owner": is_owner,
               "runs": runs, "summary": summary if len(all_series) > 1 else [],
               "round_rows": _round_rows(project=project, table=table),
               "round_plot": _round_plot(table, title=project.slug), "form": form}
    return render(request, "frontend/owner/rounds.html", context, status=status)


def _default_lrs(visible) -> list[tuple[str, int, float]]:
    """(model, parameters, lr) the rule in training/defaults.py picks when no lr is given."""
    shown = []
    for version in visible[:20]:
        n_params = training_defaults.parameter_count(version.source)
        if n_params is not None:
            lr = training_defaults.default_learning_rate(n_params)
            shown.append((version.name, n_params, lr))
    return shown


def _round_started(request: HttpRequest, *, project: Project, form: RoundStartForm) -> bool:
    """Validate the form and start the round (its first step is queued after commit);
    on a refusal the message goes on the form instead."""
    if not form.is_valid():
        return False
    try:
        name = form.cleaned_data.get("policy")
        rnd = round_services.round_create(
            project=project, settings=form.round_settings(),
            policy=model_version_get(name=name, project=project) if name else None,
            created_by=request.user,
            allowed_judge_modules=feedback_conf.allowed_judge_modules(),
        )
    except (ApplicationError, ValidationError, JudgeError) as exc:
        form.add_error(None, _message(exc))
        return False
    count = form.cleaned_data["rounds"]
    chained = f" (chain of {count})" if count > 1 else ""
    messages.success(request, f"Round {rnd.index}{chained} started: {rnd.algorithm}, "
                              f"{rnd.labelling} labels, from {rnd.policy}.")
    return True


def _message(exc: Exception) -> str:
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    return str(exc)


def _round_rows(*, project: Project, table: list) -> list[dict]:
    """The table rows with each round's current step and wall time per step."""
    steps = dict(round_selectors.round_list(project=project).values_list("index", "step"))
    return [{"row": row, "step": steps.get(row.index, ""),
             "seconds": [(name, row.seconds.get(name)) for name in round_selectors.TABLE_STEPS],
             "total": sum(s for s in row.seconds.values() if s is not None)}
            for row in table]


def _round_plot(table: list, *, title: str) -> str:
    """The rounds plot (matplotlib SVG) as a ``data:`` URI for an ``<img>``: an image
    document runs no script and its inline styles are outside the page's CSP."""
    if not any(row.accuracy is not None or row.win_rate is not None or row.kl is not None
               or row.mean_tokens is not None for row in table):
        return ""
    from training.rounds import plot as round_plot  # matplotlib: loaded when first drawn

    svg = round_plot.rounds_plot(rows=table, title=title, fmt="svg")
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


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
