"""The annotator's loop: the task page, submitting a verdict, skipping.

One page per task kind. The page's script posts verdicts with ``fetch`` and the
header ``X-Prefloop-Fragment: 1``; the answer is the *next* task's card (submit,
lease and render in one round trip), swapped in without a page load. Without
JavaScript the same forms post normally and get a redirect back to the page.

Responses are identified only by side: the card gets ``AssignedTask`` (texts in the
order shown), never a response id, model or source, and choices are posted as
``left`` / ``right``; ``judgment_submit`` maps them to A / B with the assignment's
``left_is_a``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation import permissions
from annotation.models import Assignment, Project, Task
from annotation.selectors import tasks as task_selectors
from annotation.services import assignment as assignment_services
from annotation.services import judgments as judgment_services
from frontend.forms import FeedbackForm, JudgmentForm
from prefloop.exceptions import ApplicationError, ConflictError

FRAGMENT_HEADER = "X-Prefloop-Fragment"
KINDS = {"pairwise": Task.Kind.PAIRWISE, "thumbs": Task.Kind.BINARY}
PAGE = "frontend/annotate/page.html"
CARD = "frontend/annotate/card.html"


def strength_labels(levels: int) -> list[tuple[int, str]]:
    names = {1: "Slightly", levels: "Much"} if levels > 1 else {1: "Better"}
    if levels == 3:
        names[2] = "Clearly"
    return [(level, names.get(level, f"Level {level}")) for level in range(1, levels + 1)]


def _wants_fragment(request: HttpRequest) -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def _project_and_kind(request: HttpRequest, slug: str, kind_slug: str) -> tuple[Project, str]:
    project, _ = permissions.project_get_for_member(slug=slug, user=request.user)
    kind = KINDS.get(kind_slug)
    enabled = {
        Task.Kind.PAIRWISE: project.pairwise_enabled,
        Task.Kind.BINARY: project.binary_enabled,
    }
    if kind is None or not enabled[kind]:
        raise Http404("This project has no such task kind.")
    return project, kind


def _own_assignment(request: HttpRequest, project: Project, assignment_id: int) -> Assignment:
    assignment = task_selectors.assignment_get_for_annotator(
        assignment_id=assignment_id, annotator=request.user
    )
    if assignment is None or assignment.task.project_id != project.pk:
        raise Http404("No such assignment.")
    return assignment


def _card_context(
    request: HttpRequest, project: Project, kind_slug: str, assignment: Assignment | None,
    error: str = "",
) -> dict:
    return {
        "project": project,
        "kind_slug": kind_slug,
        "task": task_selectors.assigned_task_view(assignment=assignment) if assignment else None,
        "progress": task_selectors.progress_for_annotator(project=project, annotator=request.user),
        "strengths": strength_labels(project.strength_levels),
        "error": error,
    }


def _lease_next(request: HttpRequest, project: Project, kind_slug: str) -> Assignment | None:
    """The caller's next task; none from an archived project."""
    if project.archived_at is not None:
        return None
    return assignment_services.task_next_for_annotator(
        project=project, annotator=request.user, kind=KINDS[kind_slug]
    )


def _next_card(
    request: HttpRequest, project: Project, kind_slug: str, *, error: str = "", status: int = 200
) -> HttpResponse:
    assignment = _lease_next(request, project, kind_slug)
    context = _card_context(request, project, kind_slug, assignment, error)
    response = render(request, CARD, context, status=status)
    response.csp_remote_images = project.allow_remote_images
    return response


@require_GET
@login_required
def task_page(request: HttpRequest, slug: str, kind_slug: str) -> HttpResponse:
    project, _ = _project_and_kind(request, slug, kind_slug)
    if _wants_fragment(request):
        return _next_card(request, project, kind_slug)
    assignment = _lease_next(request, project, kind_slug)
    response = render(request, PAGE, _card_context(request, project, kind_slug, assignment))
    response.csp_remote_images = project.allow_remote_images
    return response


def _after_post(
    request: HttpRequest, project: Project, kind_slug: str, assignment: Assignment,
    error: ApplicationError | str | None,
) -> HttpResponse:
    """Next card (fragment) or a redirect back to the page (no JavaScript)."""
    message = error.message if isinstance(error, ApplicationError) else (error or "")
    if not _wants_fragment(request):
        if message:
            messages.error(request, message)
        return redirect("frontend:task", slug=project.slug, kind_slug=kind_slug)
    if error is None or isinstance(error, ConflictError):
        # Stored (or nothing left to store on this lease): move on to the next task.
        status = 200 if error is None else error.status_code
        return _next_card(request, project, kind_slug, error=message, status=status)
    context = _card_context(request, project, kind_slug, assignment, message)
    response = render(request, CARD, context, status=getattr(error, "status_code", 400))
    response.csp_remote_images = project.allow_remote_images
    return response


def _form_error(form) -> str:
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


@require_POST
@login_required
def judgment_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project, _ = _project_and_kind(request, slug, "pairwise")
    assignment = _own_assignment(request, project, assignment_id)
    form = JudgmentForm(request.POST)
    if not form.is_valid():
        return _after_post(request, project, "pairwise", assignment, _form_error(form))
    data = form.cleaned_data
    try:
        judgment_services.judgment_submit(
            assignment=assignment, annotator=request.user, choice=data["choice"],
            strength=data["strength"] or 1, rationale=data["rationale"],
            time_spent_ms=data["time_spent_ms"], idempotency_key=data["idempotency_key"] or None,
        )
    except ApplicationError as exc:
        return _after_post(request, project, "pairwise", assignment, exc)
    return _after_post(request, project, "pairwise", assignment, None)


@require_POST
@login_required
def feedback_submit(request: HttpRequest, slug: str, assignment_id: int) -> HttpResponse:
    project, _ = _project_and_kind(request, slug, "thumbs")
    assignment = _own_assignment(request, project, assignment_id)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return _after_post(request, project, "thumbs", assignment, _form_error(form))
    data = form.cleaned_data
    try:
        judgment_services.feedback_submit(
            assignment=assignment, annotator=request.user, thumbs_up=data["thumbs"] == "up",
            rationale=data["rationale"], time_spent_ms=data["time_spent_ms"],
            idempotency_key=data["idempotency_key"] or None,
        )
    except ApplicationError as exc:
        return _after_post(request, project, "thumbs", assignment, exc)
    return _after_post(request, project, "thumbs", assignment, None)


@require_POST
@login_required
def task_skip(request: HttpRequest, slug: str, kind_slug: str, assignment_id: int) -> HttpResponse:
    project, _ = _project_and_kind(request, slug, kind_slug)
    assignment = _own_assignment(request, project, assignment_id)
    try:
        assignment_services.assignment_skip(assignment=assignment, annotator=request.user)
    except ApplicationError as exc:
        return _after_post(request, project, kind_slug, assignment, exc)
    return _after_post(request, project, kind_slug, assignment, None)
