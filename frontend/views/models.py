"""The models page: the registry the project sees (its own versions and site-wide ones),
with lineage, round, source and evaluation metrics; owners register a model from a
folder under the allowed model roots or from a GGUF file (converted in the request:
minutes for a real model, the page says so)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotation import permissions
from annotation.models import Membership, Project
from generation import model_import, services
from generation.selectors import model_version_list
from prefloop.exceptions import ApplicationError
from training.models import TrainingRun


class RegisterForm(forms.Form):
    name = forms.SlugField(max_length=100)
    source = forms.CharField(max_length=500, label="Model folder or .gguf file (server path)")
    parent = forms.CharField(max_length=100, required=False, label="Parent model (optional)")
    notes = forms.CharField(max_length=2000, required=False)


def _register(project: Project, data: dict):
    if model_import.is_gguf_source(data["source"]):
        return model_import.model_version_register_gguf(
            name=data["name"], gguf_path=data["source"], notes=data["notes"], project=project
        )
    return services.model_version_register_checked(
        name=data["name"], source=data["source"], parent_name=data["parent"],
        notes=data["notes"], project=project,
    )


@require_http_methods(["GET", "POST"])
@login_required
def models_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, membership = permissions.project_get_for_member(
        slug=slug, user=request.user, roles=permissions.QUALITY_READERS
    )
    is_owner = membership.role == Membership.Role.OWNER
    if request.method == "POST" and not is_owner:
        raise PermissionDenied("only project owners can register models")
    form = RegisterForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            version = _register(project, form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Registered {version.name} ({version.source}).")
            return redirect("frontend:models", slug=project.slug)
    versions = list(model_version_list(project=project).select_related("parent").order_by("name"))
    summaries = dict(
        TrainingRun.objects.filter(project=project, output_version__isnull=False).values_list(
            "output_version_id", "summary"
        )
    )
    for version in versions:  # the last metrics of the run that made it
        version.run_metrics = {k: v for k, v in (summaries.get(version.pk) or {}).items()
                               if isinstance(v, (int, float))}
    context = {"project": project, "membership": membership, "is_owner": is_owner,
               "versions": versions, "form": form}
    status = 400 if form.errors else 200
    return render(request, "frontend/owner/models.html", context, status=status)
