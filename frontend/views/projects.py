"""Owner console: create a project, edit every setting, archive it; the guidelines
preview. Creating needs ``annotation.add_project`` (``user_may_create_project``);
the settings page is for the project's owners (reviewers 403, non-members 404).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from annotation import permissions
from annotation.models import Membership, Project
from annotation.services import projects as project_services
from frontend.markdown import render_markdown
from frontend.project_forms import ProjectCreateForm, ProjectSettingsForm
from prefloop.exceptions import ApplicationError

MAY_NOT_CREATE = (
    "Creating projects needs the permission “annotation.add_project” "
    "(staff, or the “Project creators” group). Ask a site administrator."
)
SLUG_TAKEN = "This short name is not available; choose another."
PREVIEW = "preview"  # the no-JS "Preview" button: shows the rendered guidelines, saves nothing
PREVIEW_MAX_CHARS = 100_000


def _owned(request: HttpRequest, slug: str) -> tuple[Project, Membership]:
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.CONFIGURERS
    )


def _preview(request: HttpRequest) -> str:
    return render_markdown(request.POST.get("guidelines", "")) if PREVIEW in request.POST else ""


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    if not permissions.user_may_create_project(user=request.user):
        raise PermissionDenied(MAY_NOT_CREATE)
    posted = request.method == "POST"
    form = ProjectCreateForm(request.POST if posted else None)
    if posted and PREVIEW not in request.POST and form.is_valid():
        data = dict(form.cleaned_data)
        slug = data.pop("slug")
        try:
            project = project_services.project_create(slug=slug, owner=request.user, **data)
        except IntegrityError:
            form.add_error("slug", SLUG_TAKEN)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Project {project.name} created. Next: add people, "
                                      "then import prompts.")
            return redirect("frontend:people", slug=project.slug)
    status = 400 if form.is_bound and form.errors else 200
    context = {"form": form, "preview": _preview(request)}
    return render(request, "frontend/owner/project_new.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _owned(request, slug)
    posted = request.method == "POST"
    form = ProjectSettingsForm.for_project(project, request.POST if posted else None)
    if posted and PREVIEW not in request.POST and form.is_valid():
        changes = form.changes(project)
        try:
            project_services.project_update(project=project, data=changes)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            project.refresh_from_db()
        else:
            said = ", ".join(form.fields[k].label for k in changes) or "nothing changed"
            messages.success(request, f"Settings saved ({said}).")
            return redirect("frontend:project-settings", slug=project.slug)
    context = {"project": project, "membership": membership, "is_owner": True, "form": form,
               "preview": _preview(request)}
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "frontend/owner/project_settings.html", context, status=status)


@require_POST
@login_required
def project_archive(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = _owned(request, slug)
    archived = request.POST.get("archived", "1") == "1"
    project_services.project_archive_set(project=project, archived=archived)
    verb = "archived: annotators no longer see it" if archived else "restored"
    messages.success(request, f"Project {project.name} {verb}.")
    return redirect("frontend:project-settings", slug=project.slug)


@require_POST
@login_required
def guidelines_preview(request: HttpRequest) -> HttpResponse:
    """The posted markdown, rendered as annotators will see it (a fragment; the
    settings pages' script asks for it while the owner types)."""
    text = request.POST.get("guidelines", "")[:PREVIEW_MAX_CHARS]
    return HttpResponse(render_markdown(text))
