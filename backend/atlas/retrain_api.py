"""Researcher API for last-layer retraining (docs/midrange.md §4): queue the retraining Job of a
network on a curated set (202, then follow it under `jobs/<id>/`) and list the retrained
networks with their evaluations. Bad parameters are a 400 with the planner's message, and queue
nothing."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import retrain
from backend.atlas.access import visible_rows
from backend.atlas.models import RetrainedNetwork
from backend.core.errors import ApiError
from backend.stimuli.api import JOB_SCHEMA, job_response
from backend.studies.api import IsResearcher


def retrained_summary(row: RetrainedNetwork) -> dict[str, Any]:
    return {
        "id": row.pk, "network": row.network_id, "name": row.network.name,
        "source": row.network.source, "base": row.base_id, "train_set": row.train_set_id,
        "eval_set": row.eval_set_id, "attribute": row.attribute, "module": row.module,
        "fit": row.fit, "report": row.report, "job": row.job_id,
    }  # fmt: skip


class RetrainedNetworks(APIView):
    """GET: every retrained network with its evaluation. POST {"base", "train_set", "eval_set",
    "name", options…}: queue its retraining (options: `backend.atlas.retrain.DEFAULTS`)."""

    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_retrain_list", responses={200: dict})
    def get(self, request: Request) -> Response:
        rows = RetrainedNetwork.objects.select_related("network").order_by("pk")
        rows = visible_rows(rows, request.user)
        return Response({"retrained_networks": [retrained_summary(row) for row in rows]})

    @extend_schema(operation_id="atlas_retrain_create", request=dict,
                   responses={202: JOB_SCHEMA, 400: None})  # fmt: skip
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApiError("bad_request", "send the job's parameters as a JSON object")
        try:
            job = retrain.do_queue_retrain_params(dict(request.data), request.user)
        except ValidationError as err:
            raise ApiError("invalid_parameters", " ".join(err.messages)) from None
        return job_response(job)
