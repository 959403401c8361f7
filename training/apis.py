"""REST API for training runs (owners start and cancel; reviewers read)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.models import Project
from annotation.selectors.exports import export_snapshot_get
from generation.models import ModelVersion
from generation.selectors import model_version_get
from training import selectors, services


class TrainingRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    algorithm = serializers.CharField()
    status = serializers.CharField()
    hyperparameters = serializers.JSONField()
    processes = serializers.IntegerField()
    nodes = serializers.IntegerField()
    snapshot = serializers.CharField(source="snapshot.content_hash")
    policy = serializers.CharField(source="policy.name")
    reference = serializers.CharField(source="reference.name")
    output_version = serializers.CharField(source="output_version.name", allow_null=True)
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    progress = serializers.FloatField()
    summary = serializers.JSONField()
    error = serializers.CharField()
    log_tail = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def _model(name: str, project: Project) -> ModelVersion:
    """The model version ``name`` the project sees (its own, else site-wide); 404 else."""
    return model_version_get(name=name, project=project)


class TrainingRunCreateInputSerializer(serializers.Serializer):
    algorithm = serializers.ChoiceField(choices=sorted(services.FORMATS_FOR))
    snapshot = serializers.CharField(help_text="Content hash of an export snapshot.")
    policy = serializers.CharField(help_text="Model version name to start from.")
    reference = serializers.CharField(required=False, allow_blank=True)
    hyperparameters = serializers.DictField(required=False, default=dict)
    output_name = serializers.SlugField(required=False, allow_blank=True, max_length=100)
    processes = serializers.IntegerField(
        required=False, default=1, min_value=1, help_text="Trainer processes per node (torchrun)."
    )
    nodes = serializers.IntegerField(
        required=False, default=1, min_value=1, help_text="Nodes (needs a rendezvous endpoint)."
    )


class TrainingRunListCreateApi(APIView):
    InputSerializer = TrainingRunCreateInputSerializer

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        runs = selectors.training_run_list(project=project)
        return Response(TrainingRunOutputSerializer(runs, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: TrainingRunOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = services.training_run_create(
            project=project, algorithm=v["algorithm"],
            snapshot=export_snapshot_get(content_hash=v["snapshot"], project=project),
            policy=_model(v["policy"], project),
            reference=_model(v["reference"], project) if v.get("reference") else None,
            hyperparameters=v["hyperparameters"], output_name=v.get("output_name", ""),
            user=request.user, processes=v["processes"], nodes=v["nodes"],
        )
        return Response(TrainingRunOutputSerializer(run).data, status=201)


class TrainingRunDetailOutputSerializer(TrainingRunOutputSerializer):
    metrics = serializers.ListField(child=serializers.JSONField())
    evaluations = serializers.ListField(child=serializers.JSONField())


class TrainingRunDetailApi(APIView):
    @extend_schema(responses=TrainingRunDetailOutputSerializer)
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        run = selectors.training_run_get(project=project, run_id=run_id)
        run.metrics_series = selectors.training_metric_series(run=run)
        run.evaluations = selectors.training_metric_series(run=run, kind="eval")
        data = TrainingRunOutputSerializer(run).data
        return Response({**data, "metrics": run.metrics_series, "evaluations": run.evaluations})


class TrainingRunCancelApi(APIView):
    @extend_schema(request=None, responses=TrainingRunOutputSerializer)
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        run = services.training_run_cancel(
            run=selectors.training_run_get(project=project, run_id=run_id)
        )
        return Response(TrainingRunOutputSerializer(run).data)
