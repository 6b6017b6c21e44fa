"""Researcher API for Jobs: follow a job (state, progress, shards, ETA, result) and cancel it.
Every view that queues work (the atlas's, for instance) answers 202 with `job_response`. A job
the caller may not see is a 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.core.errors import ApiError
from backend.stimuli import services
from backend.stimuli.models import Job
from backend.studies import permissions
from backend.studies.api import IsResearcher

JOB_SCHEMA = inline_serializer(
    "Job",
    {
        "id": serializers.IntegerField(),
        "kind": serializers.CharField(),
        "state": serializers.ChoiceField(choices=Job.State.choices),
        "progress": serializers.FloatField(),
        "message": serializers.CharField(),
        "error": serializers.CharField(),
        "duration_seconds": serializers.FloatField(allow_null=True),
        "eta_seconds": serializers.FloatField(allow_null=True),
        "shards": serializers.DictField(child=serializers.IntegerField()),
        "hosts": serializers.ListField(child=serializers.CharField()),
        "result": serializers.DictField(),
        "url": serializers.CharField(),
    },
)


def visible_jobs(user: Any) -> QuerySet[Job]:
    """Jobs a researcher may follow: their own (superusers: all)."""
    return permissions.visible_jobs(user)


def job_body(job: Job) -> dict[str, Any]:
    return {
        **job.as_progress(),
        "kind": job.kind,
        "result": job.result,
        "url": f"/api/v1/researcher/jobs/{job.pk}/",
    }


def job_response(job: Job) -> Response:
    """The answer of a view that queued a job: 202 and where to follow it."""
    return Response(job_body(job), status=status.HTTP_202_ACCEPTED)


def queue_from_body(request: Request, queue: Callable[[dict[str, Any], Any], Job]) -> Response:
    """The answer of a view that queues a job from the parameters in its JSON body,
    `queue(params, user)`: 202 and where to follow it; a 400 that queues nothing for a body that
    is not an object, or with the planner's message for parameters it cannot run."""
    if not isinstance(request.data, dict):
        raise ApiError("bad_request", "send the job's parameters as a JSON object")
    try:
        job = queue(dict(request.data), request.user)
    except ValidationError as err:
        raise ApiError("invalid_parameters", " ".join(err.messages)) from None
    return job_response(job)


def id_filter(request: Request, name: str) -> int | None:
    """The query parameter `name` as an id (None when absent or blank; a 400 otherwise)."""
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    if not str(value).isdigit():
        raise ApiError("bad_filter", f"{name} must be an id (a whole number), got {value!r}")
    return int(str(value))


class JobDetail(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses={200: JOB_SCHEMA, 404: None})
    def get(self, request: Request, pk: int) -> Response:
        job = visible_jobs(request.user).filter(pk=pk).first()
        if job is None:
            raise ApiError("not_found", f"job {pk} not found", status_code=404)
        return Response(job_body(job))


class CancelJob(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses={200: JOB_SCHEMA, 404: None, 409: None})
    def post(self, request: Request, pk: int) -> Response:
        job = visible_jobs(request.user).filter(pk=pk).first()
        if job is None:
            raise ApiError("not_found", f"job {pk} not found", status_code=404)
        try:
            job = services.do_cancel_job(job, request.user)
        except ValidationError as err:
            raise ApiError("job_finished", " ".join(err.messages), status_code=409) from None
        return Response(job_body(job))
