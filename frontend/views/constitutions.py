"""Owner pages for AI-feedback constitutions: the list (with a "new constitution"
form) and the edit page, which makes a NEW version through the same services as
the API; a version is never edited in place.

A project sees its own constitutions and the site-wide ones (``generation.ownership``);
these pages sit in its owner area, so owners and reviewers read them (annotators 403,
non-members 404), and only owners POST. Owners create and version the project's own
constitutions; only staff version site-wide ones (the default among them), as in the API.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from annotation.models import Membership
from frontend.forms import ConstitutionCreateForm, ConstitutionVersionForm, PrincipleGroups
from frontend.views.owner import _message, _page, _readable
from generation.feedback import selectors
from generation.feedback.constitution import DEFAULT_NAME
from generation.feedback.models import Constitution, ConstitutionVersion
from generation.feedback.services import constitutions as services
from prefloop.exceptions import ApplicationError, NotFoundError

OWNERS_ONLY = "Only project owners edit constitutions."
SITE_WIDE_STAFF_ONLY = "Only staff version site-wide constitutions."
ADD = "add"  # the "Add another principle" button: shows one more empty group, saves nothing


def _may_edit(
    request: HttpRequest, membership: Membership, constitution: Constitution | None = None
) -> bool:
    """Owners edit the project's own constitutions; site-wide ones need staff too."""
    if membership.role != Membership.Role.OWNER:
        return False
    return constitution is None or constitution.project_id is not None or request.user.is_staff


@require_http_methods(["GET", "POST"])
@login_required
def constitution_list(request: HttpRequest, slug: str) -> HttpResponse:
    """Every constitution with its latest version's principles; for owners, a form that
    creates a new one (its version 1)."""
    project, membership = _readable(request, slug)
    is_owner = membership.role == Membership.Role.OWNER
    posted = request.method == "POST"
    if posted and not is_owner:
        raise PermissionDenied(OWNERS_ONLY)
    form = groups = None
    if is_owner:
        form, groups = ConstitutionCreateForm(), PrincipleGroups()
        if posted and ADD in request.POST:
            form = ConstitutionCreateForm(initial=request.POST.dict())
            groups = PrincipleGroups.redisplay(request.POST)
        elif posted:
            form, groups = ConstitutionCreateForm(request.POST), PrincipleGroups(request.POST)
            version = _saved(form, groups, lambda principles: services.constitution_create(
                name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                note=form.cleaned_data["note"], principles=principles, created_by=request.user,
                project=project,
            ))
            if version is not None:
                messages.success(request, f"Constitution {version.constitution.name} created "
                                          f"(version {version.number}).")
                return redirect("frontend:constitutions", slug=project.slug)
    if not posted:  # made on first view, as the API's list does; a POST writes only its own
        services.constitution_default_get_or_create()
    rows = [_row(request, membership, c) for c in selectors.constitution_list(project=project)]
    status = 400 if form is not None and form.is_bound and not form.is_valid() else 200
    response = _page(request, "frontend/owner/constitutions.html", membership, rows=rows,
                     form=form, groups=groups)
    response.status_code = status
    return response


@require_http_methods(["GET", "POST"])
@login_required
def constitution_edit(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """The latest version's principles as a form; saving makes the next version."""
    project, membership = _readable(request, slug)
    if name == DEFAULT_NAME and request.method == "GET":
        services.constitution_default_get_or_create()
    try:
        constitution = selectors.constitution_get(name=name, project=project)
    except NotFoundError as exc:
        raise Http404(exc.message) from None
    latest = constitution.versions.order_by("-number").first()
    may_edit = _may_edit(request, membership, constitution)
    posted = request.method == "POST"
    if posted and not may_edit:
        is_owner = membership.role == Membership.Role.OWNER
        raise PermissionDenied(SITE_WIDE_STAFF_ONLY if is_owner else OWNERS_ONLY)
    form = groups = None
    if may_edit:
        current = [s.as_dict() for s in selectors.principle_specs(version=latest)] if latest else []
        form, groups = ConstitutionVersionForm(), PrincipleGroups(initial=current)
        if posted and ADD in request.POST:
            form = ConstitutionVersionForm(initial=request.POST.dict())
            groups = PrincipleGroups.redisplay(request.POST)
        elif posted:
            form, groups = ConstitutionVersionForm(request.POST), PrincipleGroups(request.POST)
            version = _saved(form, groups, lambda principles: services.constitution_version_create(
                constitution=constitution, note=form.cleaned_data["note"],
                principles=principles, created_by=request.user,
            ))
            if version is not None:
                messages.success(request, f"Saved {constitution.name} version {version.number}.")
                return redirect("frontend:constitutions", slug=project.slug)
    status = 400 if form is not None and form.is_bound and not form.is_valid() else 200
    response = _page(
        request, "frontend/owner/constitution_edit.html", membership, constitution=constitution,
        latest=latest, principles=list(latest.principles.all()) if latest else [],
        may_edit=may_edit, is_default=name == DEFAULT_NAME, form=form, groups=groups,
    )
    response.status_code = status
    return response


def _saved(form, groups: PrincipleGroups, save) -> ConstitutionVersion | None:
    """Validate the form and its principle groups and call ``save(principles)``; any
    refusal goes on the form (the service writes nothing when it refuses)."""
    groups_valid = groups.is_valid()
    if not form.is_valid() or not groups_valid:
        if not groups_valid:
            form.add_error(None, "Some principles need fixing; see the messages below.")
        return None
    try:
        return save(groups.principles())
    except (ApplicationError, ValidationError) as exc:
        form.add_error(None, _message(exc))
        return None


def _row(request: HttpRequest, membership: Membership, constitution: Constitution) -> dict:
    versions = sorted(constitution.versions.all(), key=lambda v: v.number)
    latest = versions[-1] if versions else None
    return {"constitution": constitution, "latest": latest, "count": len(versions),
            "principles": list(latest.principles.all()) if latest else [],
            "may_edit": _may_edit(request, membership, constitution)}
