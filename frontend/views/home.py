"""The annotator's start page: their projects, with their own and the project's progress."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation import permissions
from frontend import selectors


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    cards = selectors.project_cards(user=request.user)
    context = {"cards": cards, "quality_roles": permissions.QUALITY_READERS,
               "may_create": permissions.user_may_create_project(user=request.user)}
    return render(request, "frontend/home.html", context)
