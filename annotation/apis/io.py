"""Import files and export dataset snapshots (project owners only)."""

from __future__ import annotations

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.io import readers, writers
from annotation.io.rules import ExportRules
from annotation.models import ExportSnapshot, ImportJob
from annotation.selectors.exports import export_snapshot_get, export_snapshot_list
from annotation.services import exports, import_jobs, imports
from prefloop.middleware import accepts_uploads
from prefloop.parsers import FormParser, MultiPartParser

IMPORT_REJECTED = (
    "{n} bad row(s): nothing was imported (send partial=true to import the good rows)."
)


@extend_schema_serializer(component_name="ImportReport")
class ImportReportSerializer(serializers.Serializer):
    detail = serializers.CharField(required=False)
    imported = serializers.BooleanField()
    format = serializers.CharField()
    kind = serializers.CharField(allow_null=True)
    rows = serializers.IntegerField(help_text="Rows read (bad ones included).")
    rows_valid = serializers.IntegerField()
    rows_imported = serializers.IntegerField()
    error_count = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField(), help_text="line, where, reason")
    created = serializers.DictField(child=serializers.IntegerField())
    existing = serializers.DictField(child=serializers.IntegerField())
    warnings = serializers.ListField(child=serializers.CharField())


@extend_schema_serializer(component_name="ImportJob")
class ImportJobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "status", "error", "source_name", "format", "partial", "rows_total",
                  "rows_done", "tasks_planned", "report", "cancel_requested", "created_at",
                  "started_at", "finished_at", "url"]

    def get_url(self, job: ImportJob) -> str:
        return reverse(
            "annotation:project-import-job", kwargs={"slug": job.project.slug, "pk": job.pk}
        )


@accepts_uploads
class ImportApi(APIView):
    """Upload JSONL, CSV or a zipped ``save_to_disk`` folder; returns the validation report."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema_serializer(component_name="ImportInput")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField()
        format = serializers.ChoiceField(choices=readers.FORMATS, default="auto")
        partial = serializers.BooleanField(default=False)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={
            201: ImportReportSerializer,
            202: ImportJobSerializer,
            400: ImportReportSerializer,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        report = imports.import_upload(
            project=project, upload=data["file"], fmt=data["format"], partial=data["partial"],
            created_by=request.user,
        ).as_dict()
        if report["job"] is not None:  # large: a background job writes it
            job = import_jobs.import_job_get(project=project, pk=report["job"])
            return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        if not report["imported"]:
            report["detail"] = IMPORT_REJECTED.format(n=report["error_count"])
        code = status.HTTP_201_CREATED if report["imported"] else status.HTTP_400_BAD_REQUEST
        return Response(ImportReportSerializer(report).data, status=code)


class ImportJobApi(APIView):
    """A background import's progress (``rows_done`` of ``rows_total``) and report."""

    @extend_schema(responses=ImportJobSerializer)
    def get(self, request: Request, slug: str, pk: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        job = import_jobs.import_job_get(project=project, pk=pk)
        return Response(ImportJobSerializer(job).data)


class ImportJobCancelApi(APIView):
    """Stop a background import between batches (what was committed stays)."""

    @extend_schema(request=None, responses=ImportJobSerializer)
    def post(self, request: Request, slug: str, pk: int) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        job = import_jobs.import_job_cancel(project=project, pk=pk)
        return Response(ImportJobSerializer(job).data)


@extend_schema_serializer(component_name="ExportSnapshot")
class SnapshotOutputSerializer(serializers.ModelSerializer):
    rows = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportSnapshot
        fields = ["id", "format", "content_hash", "rows", "rules", "counts", "created_at",
                  "download_url"]

    def get_rows(self, snapshot: ExportSnapshot) -> int:
        return int(snapshot.counts.get("rows", 0))

    def get_download_url(self, snapshot: ExportSnapshot) -> str:
        return reverse(
            "annotation:project-export-download",
            kwargs={"slug": snapshot.project.slug, "content_hash": snapshot.content_hash},
        )


class ExportsApi(APIView):
    """GET: the project's snapshots, newest first. POST: export (idempotent per content)."""

    @extend_schema_serializer(component_name="ExportInput")
    class InputSerializer(serializers.Serializer):
        format = serializers.ChoiceField(choices=list(writers.FORMATS))
        rules = serializers.DictField(required=False, default=dict, help_text="ExportRules")

        def validate_rules(self, rules: dict) -> ExportRules:
            try:
                return ExportRules.from_dict(rules)
            except (TypeError, ValueError) as exc:
                raise serializers.ValidationError(str(exc)) from exc

    @extend_schema(responses=SnapshotOutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        found = export_snapshot_list(project=project).select_related("project")
        return Response(SnapshotOutputSerializer(found, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={200: SnapshotOutputSerializer, 201: SnapshotOutputSerializer},
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        snapshot, created = exports.export_snapshot_create(
            project=project, user=request.user, fmt=serializer.validated_data["format"],
            rules=serializer.validated_data["rules"],
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(SnapshotOutputSerializer(snapshot).data, status=code)


class ExportDetailApi(APIView):
    @extend_schema(responses=SnapshotOutputSerializer)
    def get(self, request: Request, slug: str, content_hash: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        snapshot = export_snapshot_get(content_hash=content_hash, project=project)
        return Response(SnapshotOutputSerializer(snapshot).data)


DOWNLOAD_TYPES = {
    writers.DATA_FILE: "application/octet-stream",  # JSON Lines has no registered type
    writers.CARD_FILE: "text/markdown",
    writers.MANIFEST_FILE: "application/json",
    writers.CSV_FILE: "text/csv",
}


class ExportDownloadApi(APIView):
    """The snapshot's ``data.jsonl`` (or ``?file=README.md`` / ``prefloop_export.json`` /
    ``data.csv``, whose formula-like cells are escaped for spreadsheets)."""

    @extend_schema(
        parameters=[OpenApiParameter("file", str, enum=list(writers.SNAPSHOT_FILES))],
        responses={
            **{(200, media): bytes for media in DOWNLOAD_TYPES.values()},
            (200, "application/json"): OpenApiTypes.OBJECT,  # the manifest
        },
    )
    def get(self, request: Request, slug: str, content_hash: str) -> FileResponse:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        snapshot = export_snapshot_get(content_hash=content_hash, project=project)
        name = request.query_params.get("file", writers.DATA_FILE)
        path = exports.export_snapshot_file(snapshot=snapshot, name=name)
        filename = f"{slug}-{snapshot.format}-{content_hash[:12]}-{name}"
        media = DOWNLOAD_TYPES[name]
        if media.startswith("text/"):  # the writers write UTF-8; say so (spreadsheets guess)
            media += "; charset=utf-8"
        return FileResponse(path.open("rb"), as_attachment=True, filename=filename,
                            content_type=media)
