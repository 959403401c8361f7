"""REST API of AI feedback: constitutions, judges, feedback jobs, trust reports, exports.

Constitutions and judges follow ``generation.ownership``: with ``?project=<slug>`` a
project's owners create and version its own, and its owners and reviewers read them
(with the site-wide ones); without it, staff create and version the site-wide ones
(the default constitution among them), anyone signed in reads site-wide
constitutions, and staff and the owners and reviewers of any project read site-wide
judges (they name models and AI annotators).
Jobs, traces, trust reports and AI exports belong to a project and are for its owners;
the judges, models and constitutions they name are looked up among what it sees.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.apis.io import SnapshotOutputSerializer
from generation import ownership
from generation import selectors as generation_selectors
from generation.backends.base import MAX_SEED
from generation.feedback import conf, selectors, training_data, trust
from generation.feedback.models import (
    ConstitutionVersion,
    CritiqueTrace,
    FeedbackJob,
    Judge,
    Principle,
)
from generation.feedback.services import constitutions, jobs, judges

CONSTITUTIONS, JUDGES = "constitutions", "judges"
PROJECT_PARAM, project_param = ownership.PROJECT_PARAM, ownership.project_param


class PrincipleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Principle
        fields = ["key", "name", "critique_request", "revision_request", "comparison_question",
                  "weight"]


class ConstitutionVersionSerializer(serializers.ModelSerializer):
    constitution = serializers.SlugRelatedField(slug_field="name", read_only=True)
    principles = PrincipleSerializer(many=True, read_only=True)

    class Meta:
        model = ConstitutionVersion
        fields = ["constitution", "number", "note", "created_at", "principles"]


class JudgeSerializer(serializers.ModelSerializer):
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    constitution_version = serializers.StringRelatedField(allow_null=True)
    annotator = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Judge
        fields = ["id", "name", "kind", "model_version", "constitution_version", "callable_path",
                  "settings", "annotator", "created_at"]


class FeedbackJobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    judge = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    constitution_version = serializers.StringRelatedField(allow_null=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = FeedbackJob
        fields = [
            "id", "project", "kind", "judge", "model_version", "constitution_version",
            "selection", "options", "batch_size", "seed", "status", "error", "cancel_requested",
            "backend", "worker", "celery_task_id", "attempts", "progress", "labelled", "routed",
            "skipped", "revisions", "created_at", "started_at", "finished_at",
        ]

    def get_progress(self, job: FeedbackJob) -> dict:
        return selectors.feedback_job_progress(job=job)


class CritiqueTraceSerializer(serializers.ModelSerializer):
    constitution_version = serializers.StringRelatedField()

    class Meta:
        model = CritiqueTrace
        fields = ["id", "prompt", "response", "revision", "constitution_version", "seed",
                  "rounds", "outcome", "task", "created_at"]


def _version(name: str, number: int | None, project) -> ConstitutionVersion | None:
    if not name:
        return None
    return selectors.constitution_version_get(name=name, number=number, project=project)


def _constitution_reader(request: Request):
    return ownership.owner_for_read(user=request.user, slug=project_param(request),
                                    what=CONSTITUTIONS, site_wide_open=True)


class ConstitutionListApi(APIView):
    @extend_schema(parameters=[PROJECT_PARAM],
                   responses=ConstitutionVersionSerializer(many=True))
    def get(self, request: Request) -> Response:
        project = _constitution_reader(request)
        constitutions.constitution_default_get_or_create()
        latest = [c.versions.order_by("-number").first()
                  for c in selectors.constitution_list(project=project)]
        return Response(ConstitutionVersionSerializer([v for v in latest if v], many=True).data)


class ConstitutionCreateApi(APIView):
    @extend_schema_serializer(component_name="ConstitutionCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.SlugField(max_length=100)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        note = serializers.CharField(required=False, allow_blank=True, default="")
        principles = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[PROJECT_PARAM], request=InputSerializer,
                   responses={201: ConstitutionVersionSerializer})
    def post(self, request: Request) -> Response:
        project = ownership.owner_for_write(user=request.user, slug=project_param(request),
                                            what=CONSTITUTIONS)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = constitutions.constitution_create(created_by=request.user, project=project,
                                                    **data.validated_data)
        return Response(ConstitutionVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class ConstitutionVersionApi(APIView):
    @extend_schema(parameters=[PROJECT_PARAM], responses=ConstitutionVersionSerializer)
    def get(self, request: Request, name: str, number: int | None = None) -> Response:
        project = _constitution_reader(request)
        version = selectors.constitution_version_get(name=name, number=number, project=project)
        return Response(ConstitutionVersionSerializer(version).data)


class ConstitutionVersionCreateApi(APIView):
    @extend_schema_serializer(component_name="ConstitutionVersionCreateInput")
    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(required=False, allow_blank=True, default="")
        principles = serializers.ListField(child=serializers.DictField())

    @extend_schema(parameters=[PROJECT_PARAM], request=InputSerializer,
                   responses={201: ConstitutionVersionSerializer})
    def post(self, request: Request, name: str) -> Response:
        project = ownership.owner_for_write(user=request.user, slug=project_param(request),
                                            what=CONSTITUTIONS)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        version = constitutions.constitution_version_create(
            constitution=selectors.constitution_get_owned(name=name, project=project),
            created_by=request.user, **data.validated_data,
        )
        return Response(ConstitutionVersionSerializer(version).data, status=status.HTTP_201_CREATED)


class JudgeListApi(APIView):
    @extend_schema(parameters=[PROJECT_PARAM], responses=JudgeSerializer(many=True))
    def get(self, request: Request) -> Response:
        # Judges name their models and AI annotators: not for annotators' eyes.
        project = ownership.owner_for_read(user=request.user, slug=project_param(request),
                                           what=JUDGES)
        return Response(JudgeSerializer(selectors.judge_list(project=project), many=True).data)


class JudgeCreateApi(APIView):
    @extend_schema_serializer(component_name="JudgeCreateInput")
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=[k for k in Judge.Kind.values if k != "revision"])
        name = serializers.SlugField(max_length=100, required=False, default="")
        model_version = serializers.SlugField(required=False, default="")
        constitution = serializers.SlugField(required=False, default="")
        constitution_version = serializers.IntegerField(min_value=1, required=False)
        callable_path = serializers.CharField(max_length=300, required=False, default="")
        settings = serializers.DictField(required=False, default=dict)

    @extend_schema(parameters=[PROJECT_PARAM], request=InputSerializer,
                   responses={201: JudgeSerializer})
    def post(self, request: Request) -> Response:
        project = ownership.owner_for_write(user=request.user, slug=project_param(request),
                                            what=JUDGES)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        model = d["model_version"]
        judge = judges.judge_get_or_create(
            kind=d["kind"], name=d["name"], callable_path=d["callable_path"],
            model_version=(
                generation_selectors.model_version_get(name=model, project=project)
                if model else None
            ),
            constitution_version=_version(d["constitution"], d.get("constitution_version"),
                                          project),
            settings=d["settings"], created_by=request.user, project=project,
            allowed_prefixes=conf.allowed_judge_modules(),
        )
        return Response(JudgeSerializer(judge).data, status=status.HTTP_201_CREATED)


class FeedbackJobListApi(APIView):
    @extend_schema(responses=FeedbackJobSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        rows = selectors.feedback_job_list(project=project)[:100]
        return Response(FeedbackJobSerializer(rows, many=True).data)


class FeedbackJobCreateApi(APIView):
    @extend_schema_serializer(component_name="FeedbackJobCreateInput")
    class InputSerializer(serializers.Serializer):
        judge = serializers.SlugField(help_text="Name of a judge (see /api/judges).")
        scope = serializers.ChoiceField(choices=selectors.SCOPES, default="all")
        min_agreement = serializers.FloatField(min_value=0, max_value=1, default=0.75)
        generation_job_id = serializers.IntegerField(required=False, allow_null=True)
        task_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
        split = serializers.ChoiceField(choices=["", "train", "eval"], default="")
        limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        batch_size = serializers.IntegerField(min_value=1, max_value=10_000, default=64)
        takes_human_slot = serializers.BooleanField(default=True)
        min_confidence = serializers.FloatField(min_value=0, max_value=1, default=0.2)

    @extend_schema(request=InputSerializer, responses={201: FeedbackJobSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        selectors.item_ids_check(project=project, generation_job_id=d.get("generation_job_id"),
                                 task_ids=d.get("task_ids"))
        judge = selectors.judge_get(name=d.pop("judge"), project=project)
        job = jobs.feedback_job_create(project=project, judge=judge,
                                                created_by=request.user, **d)
        return Response(FeedbackJobSerializer(job).data, status=status.HTTP_201_CREATED)


class CritiqueJobCreateApi(APIView):
    @extend_schema_serializer(component_name="CritiqueJobCreateInput")
    class InputSerializer(serializers.Serializer):
        model_version = serializers.SlugField(help_text="The model that critiques and revises.")
        constitution = serializers.SlugField(required=False, default="")
        constitution_version = serializers.IntegerField(min_value=1, required=False)
        rounds = serializers.IntegerField(min_value=1, max_value=16, default=1)
        outcome = serializers.ChoiceField(choices=["comparison", "sft"], default="comparison")
        sampling = serializers.DictField(required=False, default=dict)
        tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
        split = serializers.ChoiceField(choices=["", "train", "eval"], default="")
        response_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
        limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
        seed = serializers.IntegerField(
            min_value=0, max_value=MAX_SEED, required=False, allow_null=True
        )
        batch_size = serializers.IntegerField(min_value=1, max_value=10_000, default=32)
        takes_human_slot = serializers.BooleanField(default=True)

    @extend_schema(request=InputSerializer, responses={201: FeedbackJobSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        selectors.item_ids_check(project=project, response_ids=d.get("response_ids"))
        version = _version(d.pop("constitution"), d.pop("constitution_version", None), project)
        job = jobs.critique_job_create(
            project=project, model_version=generation_selectors.model_version_get(
                name=d.pop("model_version"), project=project),
            constitution_version=version, created_by=request.user, **d,
        )
        return Response(FeedbackJobSerializer(job).data, status=status.HTTP_201_CREATED)


class FeedbackJobDetailApi(APIView):
    @extend_schema(responses=FeedbackJobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.feedback_job_get_for_owner(job_id=job_id, user=request.user)
        return Response(FeedbackJobSerializer(job).data)


class FeedbackJobCancelApi(APIView):
    @extend_schema(request=None, responses=FeedbackJobSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.feedback_job_get_for_owner(job_id=job_id, user=request.user)
        return Response(FeedbackJobSerializer(jobs.feedback_job_cancel(job=job)).data)


class FeedbackJobRetryApi(APIView):
    @extend_schema(request=None, responses=FeedbackJobSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job = selectors.feedback_job_get_for_owner(job_id=job_id, user=request.user)
        return Response(FeedbackJobSerializer(jobs.feedback_job_retry(job=job)).data)


class CritiqueTraceListApi(APIView):
    @extend_schema(responses=CritiqueTraceSerializer(many=True))
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.feedback_job_get_for_owner(job_id=job_id, user=request.user)
        traces = selectors.critique_trace_list(project=job.project, job=job)[:500]
        return Response(CritiqueTraceSerializer(traces, many=True).data)


class JudgeTrustApi(APIView):
    @extend_schema(responses=dict)
    def get(self, request: Request, slug: str, judge: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        judge_row = selectors.judge_get(name=judge, project=project)
        report = trust.judge_trust_report(project=project, judge=judge_row)
        return Response(report.as_dict())


class AiExportCreateApi(APIView):
    @extend_schema_serializer(component_name="AiExportCreateInput")
    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=list(training_data.FORMATS), default="trl-dpo")
        source = serializers.ChoiceField(choices=training_data.SOURCES, default="soft_labels")
        judge = serializers.SlugField(required=False, default="")
        min_probability = serializers.FloatField(min_value=0.5, max_value=1, default=0.5)
        include_routed = serializers.BooleanField(default=False)
        # Validated by ConversionRules; a CharField keeps the schema's "split" enums few.
        split = serializers.CharField(default="train", help_text="train, eval or all.")
        constitution = serializers.SlugField(required=False, default="")

    @extend_schema(request=InputSerializer, responses={201: SnapshotOutputSerializer})
    def post(self, request: Request, slug: str) -> Response:
        project = selectors.project_get_for_owner(slug=slug, user=request.user)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = dict(data.validated_data)
        fmt = d.pop("format")
        snapshot, created = training_data.ai_export_create(
            project=project, fmt=fmt, rules=training_data.ConversionRules(**d), user=request.user
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(SnapshotOutputSerializer(snapshot, context={"request": request}).data,
                        status=code)
