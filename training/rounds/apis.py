"""REST API for rounds: owners start, resume and cancel; owners and reviewers read and plot.

Permissions follow ``annotation.permissions``: a non-member gets 404, a member without
the role 403. Programmatic judges named through the API must come from the server's
allowed modules (``FEEDBACK_JUDGE_MODULES``), as for AI-feedback jobs.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from generation.feedback import conf as feedback_conf
from generation.selectors import model_version_get
from training.rounds import plot, selectors, services
from training.rounds.config import RoundSettings


class RoundOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.CharField()
    step = serializers.CharField()
    steps = serializers.JSONField()
    timings = serializers.JSONField()
    algorithm = serializers.CharField()
    labelling = serializers.CharField()
    decider = serializers.CharField()
    label_kind = serializers.CharField()
    judge = serializers.CharField(source="judge.name", allow_null=True, default=None)
    eval_judge = serializers.CharField(source="eval_judge.name", allow_null=True, default=None)
    policy = serializers.CharField(source="policy.name")
    reference_choice = serializers.CharField()
    reference = serializers.CharField(source="reference.name")
    new_version = serializers.CharField(source="new_version.name", allow_null=True, default=None)
    config = serializers.JSONField()
    metrics = serializers.JSONField()
    notes = serializers.JSONField()
    error = serializers.CharField()
    deadline = serializers.DateTimeField(allow_null=True)
    rounds_remaining = serializers.IntegerField()
    auto_started = serializers.BooleanField()
    generation_job = serializers.IntegerField(source="generation_job_id", allow_null=True)
    feedback_job = serializers.IntegerField(source="feedback_job_id", allow_null=True)
    snapshot = serializers.CharField(source="snapshot.content_hash", allow_null=True, default=None)
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class RoundListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        policy = serializers.CharField(
            required=False, allow_blank=True, help_text="Model version; default: the last round's."
        )
        settings = serializers.DictField(
            required=False, default=dict,
            help_text="RoundSettings: algorithm, labelling, judge, reference, rounds, samples, "
                      "hyperparameters, deadline_hours, partial_policy, ... (docs/rounds.md).",
        )

    @extend_schema(responses=RoundOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        rounds = selectors.round_list(project=project)
        return Response(RoundOutputSerializer(rounds, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RoundOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rnd = services.round_create(
            project=project, settings=RoundSettings.from_dict(v["settings"]),
            policy=(
                model_version_get(name=v["policy"], project=project) if v.get("policy") else None
            ),
            created_by=request.user,
            allowed_judge_modules=feedback_conf.allowed_judge_modules(),
        )
        return Response(RoundOutputSerializer(rnd).data, status=201)


class RoundDetailApi(APIView):
    @extend_schema(responses=RoundOutputSerializer)
    def get(self, request: Request, slug: str, index: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        rnd = selectors.round_get(project=project, index=index)
        return Response(RoundOutputSerializer(rnd).data)


class RoundResumeApi(APIView):
    @extend_schema(request=None, responses=RoundOutputSerializer)
    def post(self, request: Request, slug: str, index: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        rnd = services.round_resume(rnd=selectors.round_get(project=project, index=index))
        return Response(RoundOutputSerializer(rnd).data)


class RoundCancelApi(APIView):
    @extend_schema(request=None, responses=RoundOutputSerializer)
    def post(self, request: Request, slug: str, index: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        rnd = services.round_cancel(rnd=selectors.round_get(project=project, index=index))
        return Response(RoundOutputSerializer(rnd).data)


class RoundPlotApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("image", str, enum=list(plot.FORMATS), description="png or svg")
        ],
        responses={(200, "image/png"): bytes, (200, "image/svg+xml"): bytes},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        fmt = "svg" if request.query_params.get("image") == "svg" else "png"
        data = plot.rounds_plot(rows=selectors.round_table(project=project), title=slug, fmt=fmt)
        return HttpResponse(data, content_type="image/svg+xml" if fmt == "svg" else "image/png")
