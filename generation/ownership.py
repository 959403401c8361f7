"""One ownership rule for what lives outside a project's own tables: model versions,
constitutions and judges (export snapshots already belong to a project).

Each belongs to a project or is site-wide (``project`` empty: the default
constitution, the demo base model). A project's objects follow its roles: owners and
reviewers read them, owners create and change them; non-members get 404. Site-wide
objects are managed by staff; owners and reviewers of any project read them (they
build on them), and annotators never learn which models exist. A project sees its
own objects and the site-wide ones, its own first when a name is in both.

APIs address an owner with the ``project`` query parameter (a slug); without it they
mean the site-wide objects.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Model, Q, QuerySet, Value, When
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

from annotation import permissions
from annotation.models import Membership, Project

SITE_WIDE_STAFF_ONLY = (
    "Only staff change site-wide {what}; add ?project=<slug> to work on a project's own."
)
SITE_WIDE_READERS_ONLY = "Only staff and project owners and reviewers read site-wide {what}."
PROJECT_PARAM = OpenApiParameter(
    "project", OpenApiTypes.STR, required=False,
    description="Slug of the owning project; omit it for the site-wide objects.",
)


def project_param(request: Request) -> str:
    """The owner an API call addresses: ``?project=<slug>``, or "" for site-wide."""
    return request.query_params.get("project", "")


def is_reader_somewhere(*, user: AbstractBaseUser) -> bool:
    """Staff, or an owner or reviewer of some project."""
    return bool(user.is_staff) or Membership.objects.filter(
        user=user, role__in=permissions.QUALITY_READERS
    ).exists()


def owner_for_read(
    *, user: AbstractBaseUser, slug: str | None, what: str, site_wide_open: bool = False
) -> Project | None:
    """The project named by ``slug`` for its owners and reviewers (404 for non-members,
    403 for annotators); without a slug, None (site-wide) for staff and readers of some
    project, or for anyone signed in when ``site_wide_open``."""
    if slug:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=user, roles=permissions.QUALITY_READERS
        )
        return project
    if not site_wide_open and not is_reader_somewhere(user=user):
        raise PermissionDenied(SITE_WIDE_READERS_ONLY.format(what=what))
    return None


def owner_for_write(*, user: AbstractBaseUser, slug: str | None, what: str) -> Project | None:
    """The project named by ``slug`` for its owners; without a slug, None for staff."""
    if slug:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=user, roles=permissions.CONFIGURERS
        )
        return project
    if not user.is_staff:
        raise PermissionDenied(SITE_WIDE_STAFF_ONLY.format(what=what))
    return None


def visible_to(queryset: QuerySet, *, project: Project | None) -> QuerySet:
    """The project's own rows and the site-wide ones (only site-wide ones without a
    project), the project's own first."""
    if project is None:
        return queryset.filter(project__isnull=True)
    mine = Case(When(project=project, then=Value(0)), default=Value(1),
                output_field=IntegerField())
    return queryset.filter(Q(project=project) | Q(project__isnull=True)).alias(
        owner_rank=mine
    ).order_by("owner_rank", "pk")


def visible_get(queryset: QuerySet, *, name: str, project: Project | None) -> Model | None:
    """The row called ``name`` that ``project`` sees (its own before a site-wide one)."""
    return visible_to(queryset.filter(name=name), project=project).first()


def check_owned_by(obj: Model, *, project: Project | None) -> None:
    """Raise 404 unless ``obj`` is site-wide or belongs to ``project``."""
    if obj.project_id is not None and (project is None or obj.project_id != project.pk):
        raise Http404("Not found.")
