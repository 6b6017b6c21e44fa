"""The participant API (docs/participant-api.md): views that validate, call one service, and
shape the answer. No authentication: the session token in the URL is the credential."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from backend.core import strictjson
from backend.core.errors import ApiError
from backend.participation import payloads, services
from backend.participation.answer_statement import Recorded, record_in_order
from backend.participation.limits import MAX_BODY_BYTES, CappedJSONParser, SessionStartThrottle
from backend.participation.models import PracticeResponse, Response, Session
from backend.participation.serializers import (
    AcknowledgementSerializer,
    AnswerSerializer,
    CompletionSerializer,
    ErrorSerializer,
    EventBatchSerializer,
    FeedbackRecordedSerializer,
    FeedbackShownSerializer,
    RequirementsSerializer,
    SessionEndedSerializer,
    SessionEndSerializer,
    SessionStartedSerializer,
    SessionStartSerializer,
    SessionStateSerializer,
    answer_from,
    plain_answer,
)
from backend.studies.models import Study

ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 403, 404, 409, 413, 429)}


class ParticipantView(APIView):
    """Open to anyone (no CSRF, no login, no throttle unless a view names one); JSON bodies
    capped at 64 KiB; JSON answers only (no browsable-API negotiation on the hot path)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []
    parser_classes = [CappedJSONParser]
    renderer_classes = [JSONRenderer]


def validated(serializer_class: type, data: Any) -> Any:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer


def study_or_404(slug: str) -> Study:
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        raise ApiError("not_found", "There is no study at this address.", 404)
    return study


class RequirementsView(ParticipantView):
    @extend_schema(
        operation_id="study_requirements", responses={200: RequirementsSerializer, 404: ERRORS[404]}
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        """What the browser must offer (the window size), checked before a session starts."""
        return ApiResponse(payloads.requirements_payload(study_or_404(slug)))


class SessionStartView(ParticipantView):
    throttle_classes = [SessionStartThrottle]

    @extend_schema(
        operation_id="start_session",
        request=SessionStartSerializer,
        responses={201: SessionStartedSerializer, 200: SessionStartedSerializer, **ERRORS},
    )
    def post(self, request: Request, slug: str) -> ApiResponse:
        """Start a session, or get back the same identity's session, with its timeline."""
        data = validated(SessionStartSerializer, request.data).validated_data
        study = study_or_404(slug)
        session, created = services.do_start_session(
            study, data["platform"], data["browser"], data.get("token") or None
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return ApiResponse(payloads.start_payload(session), status=code)


class SessionStateView(ParticipantView):
    @extend_schema(operation_id="session_state", responses={200: SessionStateSerializer, **ERRORS})
    def get(self, request: Request, token: str) -> ApiResponse:
        """Where the session is: the next trial, the correct count (if shown), completion."""
        return ApiResponse(payloads.state_payload(services.do_touch_session(token)))


def acknowledgement(recorded: Recorded) -> dict[str, Any]:
    """§3: the feedback and counter only where the design shows them."""
    body: dict[str, Any] = {
        "trial_index": recorded.trial_index,
        "next_trial_index": recorded.next_trial_index,
    }
    if recorded.show_counter:
        body["correct_count"] = recorded.correct_count
    if recorded.feedback:
        body["feedback"] = {"correct": recorded.correct}
    return body


def answer_in_order(request: HttpRequest, token: str, trial_index: int) -> HttpResponse | None:
    """The common PUT (a well-formed body, the session's next trial) without DRF's request and
    response machinery, which costs more than the statement; None hands the request to DRF,
    nothing having been written."""
    length = request.META.get("CONTENT_LENGTH") or ""
    if request.content_type != "application/json" or not length.isdigit():
        return None
    if int(length) > MAX_BODY_BYTES:
        return None
    try:
        data = strictjson.loads(request.body)
    except strictjson.BadJson:  # DRF's parser refuses it with the reason
        return None
    answer = plain_answer(data)
    if answer is None:
        return None
    recorded = record_in_order(token, trial_index, answer)
    if recorded is None:
        return None
    return JsonResponse(acknowledgement(recorded), status=status.HTTP_201_CREATED)


class ResponseView(ParticipantView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "PUT":
            fast = answer_in_order(request, kwargs["token"], kwargs["trial_index"])
            if fast is not None:
                return fast
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="put_response",
        request=AnswerSerializer,
        responses={201: AcknowledgementSerializer, 200: AcknowledgementSerializer, **ERRORS},
    )
    def put(self, request: Request, token: str, trial_index: int) -> ApiResponse:
        """Store (once) and score the answer to one main trial; repeats are idempotent."""
        answer = answer_from(request.data)
        recorded = services.record_response(token, trial_index, answer)
        code = status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK
        return ApiResponse(acknowledgement(recorded), status=code)


def practice_acknowledgement(response: PracticeResponse) -> dict[str, Any]:
    return {"feedback": {"correct": response.correct}, "attempt": response.attempt}


class PracticeResponseView(ParticipantView):
    @extend_schema(
        operation_id="put_practice_response",
        request=AnswerSerializer,
        responses={201: AcknowledgementSerializer, 200: AcknowledgementSerializer, **ERRORS},
    )
    def put(self, request: Request, token: str, attempt: int, practice_index: int) -> ApiResponse:
        """Store (once) and score a practice answer; practice always gives feedback."""
        answer = answer_from(request.data)
        _, response, created = services.do_record_practice_response(
            token, attempt, practice_index, answer
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return ApiResponse(practice_acknowledgement(response), status=code)


def feedback_recorded(answer: Response | PracticeResponse) -> dict[str, Any]:
    return {"feedback_shown": answer.raw["feedback_shown"], "correct": answer.raw["correct"]}


class FeedbackShownView(ParticipantView):
    @extend_schema(
        operation_id="put_feedback_shown",
        request=FeedbackShownSerializer,
        responses={200: FeedbackRecordedSerializer, **ERRORS},
    )
    def put(self, request: Request, token: str, trial_index: int) -> ApiResponse:
        """Record what the page showed after a main answer (feedback or not); idempotent."""
        shown = validated(FeedbackShownSerializer, request.data).shown()
        answer = services.do_record_feedback_shown(token, shown, trial_index)
        return ApiResponse(feedback_recorded(answer))


class PracticeFeedbackShownView(ParticipantView):
    @extend_schema(
        operation_id="put_practice_feedback_shown",
        request=FeedbackShownSerializer,
        responses={200: FeedbackRecordedSerializer, **ERRORS},
    )
    def put(self, request: Request, token: str, attempt: int, practice_index: int) -> ApiResponse:
        """Record what the page showed after a practice answer; idempotent."""
        shown = validated(FeedbackShownSerializer, request.data).shown()
        answer = services.do_record_feedback_shown(token, shown, practice_index, attempt)
        return ApiResponse(feedback_recorded(answer))


class EndSessionView(ParticipantView):
    @extend_schema(
        operation_id="end_session",
        request=SessionEndSerializer,
        responses={200: SessionEndedSerializer, **ERRORS},
    )
    def post(self, request: Request, token: str) -> ApiResponse:
        """End the session early because the page cannot run the study here; its task list
        goes to the next participant at once."""
        reason = validated(SessionEndSerializer, request.data).validated_data["reason"]
        session: Session = services.do_end_session(token, reason)
        return ApiResponse({"state": session.state, "end_reason": session.end_reason})


class EventsView(ParticipantView):
    @extend_schema(
        operation_id="post_events",
        request=EventBatchSerializer,
        responses={204: None, **ERRORS},
    )
    def post(self, request: Request, token: str) -> ApiResponse:
        """Record focus/blur, fullscreen exits, resizes and reading times (≤ 100 a request)."""
        events = validated(EventBatchSerializer, request.data).validated_data["events"]
        services.do_record_events(token, events)
        return ApiResponse(status=status.HTTP_204_NO_CONTENT)


class CompleteView(ParticipantView):
    @extend_schema(
        operation_id="complete_session",
        request=None,
        responses={200: CompletionSerializer, **ERRORS},
    )
    def post(self, request: Request, token: str) -> ApiResponse:
        """Finish: the completion code and where to go; 409 with the missing trial indices."""
        session = services.do_complete_session(token)
        return ApiResponse(payloads.completion_payload(session))
