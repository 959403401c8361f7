"""The annotator's loop: next task, judgment or thumbs, skip, own progress.

Task payloads carry the prompt and the texts in the order shown, never the model,
sampling or source of a response. Choices are sent as the annotator saw them
(``left`` / ``right``); the recorded ``left_is_a`` maps them to A / B.
"""

from __future__ import annotations

import dataclasses

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import permissions
from annotation.models import Assignment, Judgment, Task
from annotation.selectors import tasks as task_selectors
from annotation.services import assignment as assignment_services
from annotation.services import judgments as judgment_services
from prefloop.exceptions import ConflictError

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="Repeat a submission safely: the same key returns the stored verdict.",
)


def _own_assignment(request: Request, assignment_id: int) -> Assignment:
    assignment = task_selectors.assignment_get_for_annotator(
        assignment_id=assignment_id, annotator=request.user
    )
    if assignment is None:
        raise Http404("No such assignment.")
    return assignment


def _idempotency_key(request: Request, data: dict) -> str | None:
    return request.headers.get("Idempotency-Key") or data.get("idempotency_key") or None


def _verdict(request: Request, assignment_id: int, input_serializer: type) -> dict:
    """The caller's own assignment and the validated pairwise verdict, as service kwargs."""
    assignment = _own_assignment(request, assignment_id)
    serializer = input_serializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = serializer.validated_data
    return {
        "assignment": assignment,
        "annotator": request.user,
        "choice": data["choice"],
        "strength": data["strength"],
        "rationale": data["rationale"],
        "time_spent_ms": data["time_spent_ms"],
        "idempotency_key": _idempotency_key(request, data),
    }


def _judgment_out(judgment: Judgment, created: bool) -> dict:
    return {
        "id": judgment.pk,
        "task_id": judgment.task_id,
        "choice": judgment_services.choice_to_side(
            choice=judgment.choice, shown_left=judgment.shown_left
        ),
        "strength": judgment.strength,
        "created": created,
    }


class MessageSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField()


@extend_schema_serializer(component_name="AssignedTask")
class AssignedTaskSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Task.Kind.choices)
    expires_at = serializers.DateTimeField()
    prompt = MessageSerializer(many=True)
    left = serializers.CharField(allow_null=True, help_text="Pairwise: the text shown on the left.")
    right = serializers.CharField(allow_null=True)
    response = serializers.CharField(allow_null=True, help_text="Binary: the text to rate.")
    strength_levels = serializers.IntegerField()
    allow_tie = serializers.BooleanField()
    allow_both_bad = serializers.BooleanField()


class TaskNextApi(APIView):
    @extend_schema_serializer(component_name="TaskNextQuery")
    class QuerySerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Task.Kind.choices, default=Task.Kind.PAIRWISE)

    @extend_schema(
        parameters=[QuerySerializer],
        request=None,
        responses={200: AssignedTaskSerializer, 204: None},
        description="Lease the caller's next task (or return the lease they hold). 204: none "
        "left. 409: the project is archived and gives out no tasks.",
    )
    def post(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(slug=slug, user=request.user)
        if project.archived_at is not None:
            raise ConflictError(assignment_services.PROJECT_ARCHIVED)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        assignment = assignment_services.task_next_for_annotator(
            project=project, annotator=request.user, kind=query.validated_data["kind"]
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        view = task_selectors.assigned_task_view(assignment=assignment)
        return Response(AssignedTaskSerializer(view).data)


class JudgmentSubmitApi(APIView):
    @extend_schema_serializer(component_name="JudgmentSubmitInput")
    class InputSerializer(serializers.Serializer):
        choice = serializers.ChoiceField(choices=["left", "right", "tie", "both_bad"])
        strength = serializers.IntegerField(min_value=1, default=1)
        rationale = serializers.CharField(
            allow_blank=True, default="", max_length=judgment_services.RATIONALE_MAX
        )
        time_spent_ms = serializers.IntegerField(
            min_value=0, max_value=judgment_services.TIME_MAX_MS, allow_null=True, default=None
        )
        idempotency_key = serializers.CharField(
            max_length=judgment_services.KEY_MAX, required=False
        )

    @extend_schema_serializer(component_name="JudgmentSubmitOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        task_id = serializers.IntegerField()
        choice = serializers.CharField(help_text="left / right / tie / both_bad, as shown.")
        strength = serializers.IntegerField()
        created = serializers.BooleanField(help_text="False when this repeats a stored judgment.")

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        judgment, created = judgment_services.judgment_submit(
            **_verdict(request, assignment_id, self.InputSerializer)
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.OutputSerializer(_judgment_out(judgment, created)).data, status=code)


class JudgmentSubmitNextApi(APIView):
    """Submit a verdict and lease the next task in one round trip (the fast loop).

    Same input, idempotency and errors as ``judgment-submit``; ``next`` is what
    ``tasks/next`` would return. A stored verdict is always answered 201/200: when no
    next task can be given (none left, pairwise tasks disabled since this lease was
    taken, membership ended), ``next`` is ``null`` and ``next_detail`` says why. A
    retry with the same key returns the stored verdict and the lease already handed out.
    """

    @extend_schema_serializer(component_name="JudgmentSubmitNextOutput")
    class OutputSerializer(serializers.Serializer):
        judgment = JudgmentSubmitApi.OutputSerializer()
        next = AssignedTaskSerializer(allow_null=True)
        next_detail = serializers.CharField(
            allow_null=True, help_text="Why next is null (plain words); null when it is a task."
        )

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=JudgmentSubmitApi.InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        judgment, created, following, why = judgment_services.judgment_submit_and_next(
            **_verdict(request, assignment_id, JudgmentSubmitApi.InputSerializer)
        )
        following_view = (
            task_selectors.assigned_task_view(assignment=following) if following else None
        )
        # The hot path: plain dicts of exactly the documented shape (OutputSerializer is
        # the schema; tests compare the two), not a serializer per call.
        out = {
            "judgment": _judgment_out(judgment, created),
            "next": dataclasses.asdict(following_view) if following_view else None,
            "next_detail": why,
        }
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(out, status=code)


class FeedbackSubmitApi(APIView):
    @extend_schema_serializer(component_name="FeedbackSubmitInput")
    class InputSerializer(serializers.Serializer):
        thumbs_up = serializers.BooleanField()
        rationale = serializers.CharField(
            allow_blank=True, default="", max_length=judgment_services.RATIONALE_MAX
        )
        time_spent_ms = serializers.IntegerField(
            min_value=0, max_value=judgment_services.TIME_MAX_MS, allow_null=True, default=None
        )
        idempotency_key = serializers.CharField(
            max_length=judgment_services.KEY_MAX, required=False
        )

    @extend_schema_serializer(component_name="FeedbackSubmitOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        task_id = serializers.IntegerField()
        thumbs_up = serializers.BooleanField()
        created = serializers.BooleanField()

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer,
        responses={201: OutputSerializer, 200: OutputSerializer},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own_assignment(request, assignment_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        feedback, created = judgment_services.feedback_submit(
            assignment=assignment,
            annotator=request.user,
            thumbs_up=data["thumbs_up"],
            rationale=data["rationale"],
            time_spent_ms=data["time_spent_ms"],
            idempotency_key=_idempotency_key(request, data),
        )
        out = {"id": feedback.pk, "task_id": feedback.task_id, "thumbs_up": feedback.thumbs_up}
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.OutputSerializer({**out, "created": created}).data, status=code)


class AssignmentSkipApi(APIView):
    @extend_schema_serializer(component_name="AssignmentSkipOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=Assignment.Status.choices)

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = _own_assignment(request, assignment_id)
        assignment = assignment_services.assignment_skip(
            assignment=assignment, annotator=request.user
        )
        return Response(self.OutputSerializer(assignment).data)


class ProgressApi(APIView):
    """The caller's own progress in a project, and the project's overall completion."""

    @extend_schema_serializer(component_name="Progress")
    class OutputSerializer(serializers.Serializer):
        judgments = serializers.IntegerField()
        feedback = serializers.IntegerField()
        skipped = serializers.IntegerField()
        leased = serializers.IntegerField()
        project_tasks = serializers.IntegerField()
        project_slots_wanted = serializers.IntegerField()
        project_slots_done = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, slug: str) -> Response:
        project, _ = permissions.project_get_for_member(slug=slug, user=request.user)
        progress = task_selectors.progress_for_annotator(project=project, annotator=request.user)
        return Response(self.OutputSerializer(progress).data)
