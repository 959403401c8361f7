"""REST API of the generation app: the model registry and generation jobs.

Owners of a project start, watch and cancel its generation jobs. The registry follows
``generation.ownership``: with ``?project=<slug>`` a project's owners register its
model versions (a local folder on the workers, or a hub id) and its owners and
reviewers read them (with the site-wide ones); without it, staff register site-wide
versions, and staff and the owners and reviewers of any project read them. Annotators
never see model names.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation import ownership, selectors, services
from generation.backends.base import ModelLoadError, check_model_source_confined
from generation.models import GenerationJob, ModelVersion
from prefloop.exceptions import InvalidInputError

MODELS = "model versions"
PROJECT_PARAM, project_param = ownership.PROJECT_PARAM, ownership.project_param


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "project", "source", "parent", "version", "round_index", "notes",
                  "created_at"]


class GenerationJobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    opponent_version = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True
    )
    progress = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = [
            "id", "project", "model_version", "opponent_version", "selection", "sampling",
            "pairing", "judge", "batch_size", "status", "error", "cancel_requested", "backend",
            "worker", "celery_task_id", "progress", "responses_created", "tasks_created",
            "created_at", "started_at", "finished_at",
        ]

    def get_progress(self, job: GenerationJob) -> dict:
        return selectors.generation_job_progress(job=job)


class ModelVersionListApi(APIView):
    @extend_schema(parameters=[PROJECT_PARAM], responses=ModelVersionSerializer(many=True))
    def get(self, request: Request) -> Response:
        project = ownership.owner_for_read(user=request.user, slug=project_param(request),
                                           what=MODELS)
        versions = selectors.model_version_list(project=project)
        return Response(ModelVersionSerializer(versions, many=True).data)


class ModelVersionDetailApi(APIView):
    @extend_schema(parameters=[PROJECT_PARAM], responses=ModelVersionSerializer)
    def get(self, request: Request, name: str) -> Response:
        project = ownership.owner_for_read(user=request.user, slug=project_param(request),
                                           what=MODELS)
        version = selectors.model_version_get(name=name, project=project)
        return Response(ModelVersionSerializer(version).data)


class ModelVersionRegisterApi(APIView):
    @extend_schema_serializer(component_name="ModelVersionRegisterInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.SlugField(max_length=100)
        source = serializers.CharField(max_length=500, help_text="Local folder or hub id.")
        parent = serializers.SlugField(required=False, default="")
        round_index = serializers.IntegerField(
            min_value=0, max_value=2**31 - 1, required=False, allow_null=True
        )
        notes = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(parameters=[PROJECT_PARAM], request=InputSerializer,
                   responses={201: ModelVersionSerializer})
    def post(self, request: Request) -> Response:
        project = ownership.owner_for_write(user=request.user, slug=project_param(request),
                                            what=MODELS)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        try:
            check_model_source_confined(d["source"], roots=settings.PREFLOOP_MODEL_ROOTS)
        except ModelLoadError as exc:
            raise InvalidInputError({"source": str(exc)}) from exc
        version = services.model_version_register_checked(
            name=d["name"], source=d["source"], parent_name=d["parent"],
            round_index=d.get("round_index"), notes=d["notes"], project=project,
        )
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class GenerationJobListApi(APIView):
    @extend_schema(responses=GenerationJobSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        jobs = selectors.generation_job_list(project=project)[:100]
        return Response(GenerationJobSerializer(jobs, many=True).data)


class GenerationJobCreateApi(APIView):
    @extend_schema_serializer(component_name="GenerationJobCreateInput")
    class InputSerializer(serializers.Serializer):
        model_version = serializers.SlugField(help_text="Name of a registered model version.")
        opponent_version = serializers.SlugField(required=False, default="")
        tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        split = serializers.ChoiceField(choices=["", "train", "eval"], required=False, default="")
        lacking_candidates = serializers.BooleanField(required=False, default=False)
        sampling = serializers.DictField(
            required=False, default=dict, help_text="n, temperature, top_p, max_tokens, seed."
        )
        pairing = serializers.ChoiceField(
            choices=GenerationJob.Pairing.choices, default=GenerationJob.Pairing.RANDOM
        )
        judge = serializers.CharField(required=False, allow_blank=True, default="")
        batch_size = serializers.IntegerField(min_value=1, max_value=100_000, default=256)

    @extend_schema(request=InputSerializer, responses={201: GenerationJobSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        opponent = d["opponent_version"]
        job = services.generation_job_create(
            project=project,
            model_version=selectors.model_version_get(name=d["model_version"], project=project),
            opponent_version=(
                selectors.model_version_get(name=opponent, project=project) if opponent else None
            ),
            sampling=d["sampling"], pairing_name=d["pairing"], tags=d["tags"], split=d["split"],
            lacking_candidates=d["lacking_candidates"], batch_size=d["batch_size"],
            judge=d["judge"], created_by=request.user,
        )
        return Response(GenerationJobSerializer(job).data, status=status.HTTP_201_CREATED)


class GenerationJobDetailApi(APIView):
    @extend_schema(responses=GenerationJobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_get_for_owner(job_id=job_id, user=request.user)
        return Response(GenerationJobSerializer(job).data)


class GenerationJobCancelApi(APIView):
    @extend_schema(request=None, responses=GenerationJobSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.generation_job_get_for_owner(job_id=job_id, user=request.user)
        return Response(GenerationJobSerializer(services.generation_job_cancel(job=job)).data)
