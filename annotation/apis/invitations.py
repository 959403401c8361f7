"""Invitations to a project's roles (``annotation.services.invitations``).

Owners invite and list their project's pending invitations; the invited person lists
theirs and accepts or declines one by its token. The answer to an invitation is the
same whether or not the username exists.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.apis.core import MemberOutputSerializer
from annotation.models import Membership
from annotation.services import invitations


@extend_schema_serializer(component_name="Invitation")
class InvitationOutputSerializer(serializers.Serializer):
    project = serializers.CharField(source="project.slug")
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    token = serializers.CharField(help_text="Accept with POST /api/invitations/<token>/accept.")
    inviter = serializers.CharField(source="inviter.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class InvitationCreateApi(APIView):
    @extend_schema_serializer(component_name="InvitationCreateInput")
    class InputSerializer(serializers.Serializer):
        username = serializers.CharField(
            max_length=get_user_model()._meta.get_field("username").max_length
        )
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    @extend_schema(request=InputSerializer, responses={201: InvitationOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = invitations.invitation_create(project=project, inviter=request.user,
                                                   **data.validated_data)
        return Response(InvitationOutputSerializer(invitation).data,
                        status=status.HTTP_201_CREATED)


class InvitationListApi(APIView):
    @extend_schema(responses=InvitationOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        pending = invitations.invitation_list_for_project(project=project)
        return Response(InvitationOutputSerializer(pending, many=True).data)


class MyInvitationListApi(APIView):
    @extend_schema(responses=InvitationOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        pending = invitations.invitation_list_for_user(user=request.user)
        return Response(InvitationOutputSerializer(pending, many=True).data)


class InvitationAcceptApi(APIView):
    @extend_schema(request=None, responses=MemberOutputSerializer)
    def post(self, request: Request, token: str) -> Response:
        membership = invitations.invitation_accept(token=token, user=request.user)
        return Response(MemberOutputSerializer(membership).data)


class InvitationDeclineApi(APIView):
    @extend_schema(request=None, responses=InvitationOutputSerializer)
    def post(self, request: Request, token: str) -> Response:
        invitation = invitations.invitation_decline(token=token, user=request.user)
        return Response(InvitationOutputSerializer(invitation).data)
