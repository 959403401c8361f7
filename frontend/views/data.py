"""Import and export forms (project owners only).

Import shows the service's validation report on the same page: nothing is imported
when a row is bad unless "partial" is ticked. Export creates a snapshot (idempotent:
the same data gives the same snapshot) and lists the project's snapshots with links
to download their files.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotation import permissions
from annotation.io import writers
from annotation.models import Membership, Project
from annotation.selectors.exports import export_snapshot_list
from annotation.services import exports, imports
from frontend.forms import ExportForm, ImportForm
from prefloop.exceptions import ApplicationError
from prefloop.middleware import accepts_uploads

ERRORS_SHOWN = 200


def _owned(request: HttpRequest, slug: str) -> tuple[Project, Membership]:
    return permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.CONFIGURERS
    )


def _context(membership: Membership, **extra) -> dict:
    return {"project": membership.project, "membership": membership, "is_owner": True, **extra}


BACKGROUND = ("The file is valid ({rows:,} rows) and large: import job {job} is writing it in "
              "the background; annotators can keep working. Its progress: "
              "/api/projects/{slug}/imports/{job}.")


@accepts_uploads
@require_http_methods(["GET", "POST"])
@login_required
def import_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _owned(request, slug)
    posted = request.method == "POST"
    form = ImportForm(request.POST, request.FILES) if posted else ImportForm()
    report, error, status = None, "", 200
    if posted and form.is_valid():
        try:
            report = imports.import_upload(
                project=project, upload=form.cleaned_data["file"],
                fmt=form.cleaned_data["format"], partial=form.cleaned_data["partial"],
                created_by=request.user,
            ).as_dict()
            status = 200 if report["imported"] else 400
            if report["job"] is not None:  # large: a background job writes it
                messages.info(request, BACKGROUND.format(
                    rows=report["rows_valid"], job=report["job"], slug=project.slug))
                return redirect("frontend:import", slug=project.slug)
        except ApplicationError as exc:
            error, status = exc.message, exc.status_code
    elif posted:
        status = 400
    context = _context(membership, form=form, report=report, error=error,
                       errors_shown=ERRORS_SHOWN)
    return render(request, "frontend/owner/import.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def export_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = _owned(request, slug)
    form = ExportForm(request.POST) if request.method == "POST" else ExportForm()
    if form.is_bound and form.is_valid():
        try:
            snapshot, created = exports.export_snapshot_create(
                project=project, fmt=form.cleaned_data["format"], rules=form.export_rules(),
                user=request.user,
            )
        except (ApplicationError, ValueError) as exc:
            form.add_error(None, getattr(exc, "message", str(exc)))
        else:
            rows = snapshot.counts.get("rows", 0)
            verb = "Created" if created else "Unchanged data, existing"
            messages.success(request, f"{verb} snapshot {snapshot.content_hash[:12]}: {rows} rows.")
            return redirect("frontend:export", slug=project.slug)
    snapshots = export_snapshot_list(project=project)
    files = writers.SNAPSHOT_FILES
    context = _context(membership, form=form, snapshots=snapshots, files=files)
    status = 400 if form.errors else 200
    return render(request, "frontend/owner/export.html", context, status=status)
