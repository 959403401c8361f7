"""Flag a judgment as bad (owners and reviewers): the next export leaves it out."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.models import Judgment
from annotation.services import flags as flag_services
from prefloop.exceptions import NotFoundError


class JudgmentFlagApi(APIView):
    @extend_schema_serializer(component_name="JudgmentFlagInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=flag_services.REASON_MAX)

    @extend_schema_serializer(component_name="JudgmentFlag")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        judgment_id = serializers.IntegerField()
        reason = serializers.CharField()
        flagged_by = serializers.CharField(source="flagged_by.username")
        created_at = serializers.DateTimeField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, slug: str, judgment_id: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        judgment = Judgment.objects.filter(task__project=project, pk=judgment_id).first()
        if judgment is None:
            raise NotFoundError("No such judgment in this project.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flag = flag_services.judgment_flag(
            judgment=judgment, user=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(self.OutputSerializer(flag).data, status=status.HTTP_201_CREATED)
