"""Quality reports and the model leaderboard (owners and reviewers); adaptive overlap (owners)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.selectors import quality as quality_selectors
from annotation.services import assignment as assignment_services
from annotation.services import leaderboard as leaderboard_services


class PairKappaSerializer(serializers.Serializer):
    annotator_a = serializers.CharField()
    annotator_b = serializers.CharField()
    n_common = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True)


class AnnotatorAgreementSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    n_verdicts = serializers.IntegerField()
    consensus_n = serializers.IntegerField()
    consensus_agreement = serializers.FloatField(allow_null=True)
    mean_cohen_kappa = serializers.FloatField(allow_null=True)


class KindAgreementSerializer(serializers.Serializer):
    n_verdicts = serializers.IntegerField()
    n_tasks_multi = serializers.IntegerField()
    alpha_ordinal = serializers.FloatField(allow_null=True)
    alpha_nominal = serializers.FloatField(allow_null=True)
    both_bad_excluded = serializers.IntegerField()
    fleiss_kappa = serializers.FloatField(allow_null=True)
    fleiss_n_tasks = serializers.IntegerField()
    fleiss_n_raters = serializers.IntegerField()
    pairs = PairKappaSerializer(many=True)
    annotators = AnnotatorAgreementSerializer(many=True)
    pairs_annotators_limit = serializers.IntegerField(
        allow_null=True,
        help_text="null: every annotator pair is listed; else only pairs among this many "
        "annotators with the most verdicts (PREFLOOP_AGREEMENT_MAX_PAIR_ANNOTATORS).",
    )


class PositionBiasSerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()
    n_decisive = serializers.IntegerField()
    left_picks = serializers.IntegerField()
    left_share = serializers.FloatField()
    p_value = serializers.FloatField()


class TimeOnTaskSerializer(serializers.Serializer):
    kind = serializers.CharField()
    annotator_id = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()
    n = serializers.IntegerField()
    median_ms = serializers.FloatField()
    mean_ms = serializers.FloatField()
    p10_ms = serializers.FloatField()
    p90_ms = serializers.FloatField()


class GoldAccuracySerializer(serializers.Serializer):
    annotator_id = serializers.IntegerField()
    username = serializers.CharField()
    n_gold = serializers.IntegerField()
    n_correct = serializers.IntegerField()
    accuracy = serializers.FloatField()


@extend_schema_serializer(component_name="QualityReport")
class QualityReportSerializer(serializers.Serializer):
    pairwise = KindAgreementSerializer()
    binary = KindAgreementSerializer()
    position_bias = PositionBiasSerializer(many=True)
    time_on_task = TimeOnTaskSerializer(many=True)
    gold = GoldAccuracySerializer(many=True)


class ProjectStatsApi(APIView):
    @extend_schema(responses=QualityReportSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        report = quality_selectors.quality_report(project=project)
        return Response(QualityReportSerializer(report).data)


class LeaderboardApi(APIView):
    @extend_schema_serializer(component_name="LeaderboardQuery")
    class QuerySerializer(serializers.Serializer):
        bootstrap = serializers.IntegerField(
            min_value=20, default=200, help_text="At most PREFLOOP_LEADERBOARD_MAX_BOOTSTRAP."
        )
        seed = serializers.IntegerField(min_value=0, default=0)

        def validate_bootstrap(self, value: int) -> int:
            try:
                leaderboard_services.bootstrap_limit_check(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc)) from exc
            return value

    @extend_schema_serializer(component_name="LeaderboardRow")
    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField()
        model_version_id = serializers.IntegerField()
        name = serializers.CharField()
        rating = serializers.FloatField()
        ci_low = serializers.FloatField(help_text="2.5th bootstrap percentile.")
        ci_high = serializers.FloatField(help_text="97.5th bootstrap percentile.")
        wins = serializers.IntegerField()
        losses = serializers.IntegerField()
        ties = serializers.IntegerField()
        both_bad = serializers.IntegerField(help_text="Not used by the fit.")
        count = serializers.IntegerField()
        intervals = serializers.ChoiceField(
            choices=["current", "stale", "pending"],
            help_text="current: bootstrap intervals for this data; stale: from before the "
            "newest judgments; pending: being computed (ci_low = ci_high = rating). Also in "
            "the X-Prefloop-Intervals header.",
        )

    @extend_schema(parameters=[QuerySerializer], responses=OutputSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.QUALITY_READERS
        )
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        board = leaderboard_services.leaderboard_cached(project=project, **query.validated_data)
        rows = [{**row.__dict__, "intervals": board.intervals} for row in board.rows]
        response = Response(self.OutputSerializer(rows, many=True).data)
        response["X-Prefloop-Intervals"] = board.intervals
        return response


class OverlapAdaptApi(APIView):
    """Send completed tasks with low agreement to more annotators (owners only)."""

    @extend_schema_serializer(component_name="OverlapAdaptInput")
    class InputSerializer(serializers.Serializer):
        min_agreement = serializers.FloatField(min_value=0.0, max_value=1.0)
        step = serializers.IntegerField(min_value=1, max_value=10, default=1)

    @extend_schema_serializer(component_name="OverlapAdaptOutput")
    class OutputSerializer(serializers.Serializer):
        raised = serializers.IntegerField()
        task_ids = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(
            slug=slug, user=request.user, roles=permissions.CONFIGURERS
        )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raised = assignment_services.task_overlap_adapt(
            project=project, **serializer.validated_data
        )
        return Response(self.OutputSerializer({"raised": len(raised), "task_ids": raised}).data)
