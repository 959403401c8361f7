"""Projects and members: list, create, read, configure (owners), manage members (owners)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.models import Membership, Project
from annotation.selectors import projects as project_selectors
from annotation.services import projects as project_services

RESERVED_SLUGS = {"create"}
# Taken and reserved slugs get the same answer, and only people who may create projects
# ever see it: it never confirms that a project the caller cannot see exists.
SLUG_UNAVAILABLE = "This slug is not available; choose another."
MAY_NOT_CREATE = "You may not create projects; ask staff to add you to the Project creators group."


class ProjectSettingsSerializer(serializers.Serializer):
    """The settings an owner may change (all optional, for partial updates)."""

    name = serializers.CharField(max_length=200, required=False)
    guidelines = serializers.CharField(allow_blank=True, required=False)
    pairwise_enabled = serializers.BooleanField(required=False)
    binary_enabled = serializers.BooleanField(required=False)
    overlap = serializers.IntegerField(min_value=1, max_value=50, required=False)
    max_overlap = serializers.IntegerField(min_value=1, max_value=50, required=False)
    strength_levels = serializers.IntegerField(min_value=1, max_value=10, required=False)
    allow_tie = serializers.BooleanField(required=False)
    allow_both_bad = serializers.BooleanField(required=False)
    lease_seconds = serializers.IntegerField(min_value=30, max_value=7 * 86400, required=False)
    exclude_own_responses = serializers.BooleanField(required=False)
    allow_remote_images = serializers.BooleanField(required=False)
    auto_round_threshold = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, allow_null=True, required=False
    )


@extend_schema_serializer(component_name="Project")
class ProjectOutputSerializer(serializers.ModelSerializer):
    my_role = serializers.CharField(read_only=True)

    class Meta:
        model = Project
        fields = ["slug", *project_services.PROJECT_SETTINGS, "created_at", "my_role"]


class ProjectListApi(APIView):
    @extend_schema(responses=ProjectOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        found = project_selectors.project_list_for_user(user=request.user)
        return Response(ProjectOutputSerializer(found, many=True).data)


class ProjectCreateApi(APIView):
    @extend_schema_serializer(component_name="ProjectCreateInput")
    class InputSerializer(ProjectSettingsSerializer):
        slug = serializers.SlugField(max_length=80)

        def validate_slug(self, slug: str) -> str:
            if slug in RESERVED_SLUGS or Project.objects.filter(slug=slug).exists():
                raise serializers.ValidationError(SLUG_UNAVAILABLE)
            return slug

    @extend_schema(request=InputSerializer, responses={201: ProjectOutputSerializer})
    def post(self, request: Request) -> Response:
        if not permissions.user_may_create_project(user=request.user):
            raise PermissionDenied(MAY_NOT_CREATE)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_services.project_create(owner=request.user, **serializer.validated_data)
        project.my_role = Membership.Role.OWNER
        return Response(ProjectOutputSerializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectOutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project, membership = permissions.project_get_for_member(slug=slug, user=request.user)
        project.my_role = membership.role
        return Response(ProjectOutputSerializer(project).data)


class ProjectUpdateApi(APIView):
    @extend_schema_serializer(component_name="ProjectUpdateInput")
    class InputSerializer(ProjectSettingsSerializer):
        pass

    @extend_schema(request=InputSerializer, responses=ProjectOutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        project, membership = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = project_services.project_update(project=project, data=serializer.validated_data)
        project.my_role = membership.role
        return Response(ProjectOutputSerializer(project).data)


@extend_schema_serializer(component_name="Member")
class MemberOutputSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    created_at = serializers.DateTimeField()


class MemberListApi(APIView):
    @extend_schema(responses=MemberOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        members = project_selectors.membership_list(project=project)
        return Response(MemberOutputSerializer(members, many=True).data)


class MemberSetApi(APIView):
    """Add an annotator or lower a member's role (owners); staff may set any role.
    Owners and reviewers otherwise join by invitation (``invitations/create``)."""

    @extend_schema_serializer(component_name="MemberSetInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(
            max_length=get_user_model()._meta.get_field("username").max_length
        )
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    @extend_schema(request=InputSerializer, responses=MemberOutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = project_services.member_role_set(project=project, by=request.user,
                                                      **serializer.validated_data)
        return Response(MemberOutputSerializer(membership).data)
