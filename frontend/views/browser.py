"""The data browser (owners and reviewers): judgments under filters, keyset-paged;
one item with both responses and every verdict; flag a judgment as bad or clear it.

Forms work without JavaScript: filters are a GET form, flags are POSTs that redirect
back to the item.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation import permissions
from annotation.models import Judgment, Membership, Project
from annotation.services import flags as flag_services
from frontend import data_browser
from prefloop.exceptions import ApplicationError


def _readable(request: HttpRequest, slug: str) -> tuple[Project, Membership]:
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.QUALITY_READERS
    )


def _context(membership: Membership, **extra) -> dict:
    return {"project": membership.project, "membership": membership,
            "is_owner": membership.role == Membership.Role.OWNER, **extra}


def _after(request: HttpRequest) -> int | None:
    raw = request.GET.get("after", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


@require_GET
@login_required
def browser(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _readable(request, slug)
    filters = data_browser.BrowserFilters.from_query(request.GET)
    page = data_browser.judgment_page(project=project, filters=filters, after=_after(request))
    context = _context(membership, page=page, query=filters.as_query(),
                       sources=data_browser.SOURCES)
    return render(request, "frontend/owner/data_browser.html", context)


@require_GET
@login_required
def item(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    project, membership = _readable(request, slug)
    detail = data_browser.item_detail(project=project, task_id=task_id)
    if detail is None:
        raise Http404("No such item.")
    return render(request, "frontend/owner/item.html", _context(membership, detail=detail))


def _judgment(project: Project, judgment_id: int) -> Judgment:
    judgment = Judgment.objects.filter(task__project=project, pk=judgment_id).first()
    if judgment is None:
        raise Http404("No such judgment.")
    return judgment


@require_POST
@login_required
def judgment_flag(request: HttpRequest, slug: str, judgment_id: int) -> HttpResponse:
    project, _ = _readable(request, slug)
    judgment = _judgment(project, judgment_id)
    try:
        flag_services.judgment_flag(
            judgment=judgment, user=request.user, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Judgment {judgment.pk} flagged: the next export leaves it out.")
    return redirect("frontend:data-item", slug=project.slug, task_id=judgment.task_id)


@require_POST
@login_required
def judgment_flag_clear(request: HttpRequest, slug: str, judgment_id: int) -> HttpResponse:
    project, _ = _readable(request, slug)
    judgment = _judgment(project, judgment_id)
    try:
        flag_services.judgment_flag_clear(judgment=judgment, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Flag on judgment {judgment.pk} cleared: it counts again.")
    return redirect("frontend:data-item", slug=project.slug, task_id=judgment.task_id)
