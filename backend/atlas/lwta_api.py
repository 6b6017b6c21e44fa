"""Researcher API for LWTA networks (docs/lwta.md): queue the fine-tuning Job of a network's LWTA
version (202, then follow it under `jobs/<id>/`) and list the LWTA networks with their reports.
Bad parameters (unknown module types, U < 2, steps ≤ 0, modules the base network does not have,
…) are a 400 with the planner's message, and queue nothing."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.atlas import lwta
from backend.atlas.access import visible_rows
from backend.atlas.models import LWTANetwork
from backend.stimuli.api import JOB_SCHEMA, queue_from_body
from backend.studies.api import IsResearcher


def lwta_summary(row: LWTANetwork) -> dict[str, Any]:
    return {
        "id": row.pk, "network": row.network_id, "name": row.network.name,
        "source": row.network.source, "base": row.base_id, "image_set": row.image_set_id,
        "block_size": row.block_size, "temperature": row.temperature, "modules": row.modules,
        "fine_tune": row.fine_tune, "report": row.report, "curve": row.curve, "job": row.job_id,
    }  # fmt: skip


class LWTANetworks(APIView):
    """GET: every LWTA network with its report. POST {"base", "image_set", "name", options…}:
    queue its fine-tuning (options and defaults: `backend.atlas.lwta.DEFAULTS`)."""

    permission_classes = [IsResearcher]

    @extend_schema(operation_id="atlas_lwta_list", responses={200: dict})
    def get(self, request: Request) -> Response:
        rows = LWTANetwork.objects.select_related("network").order_by("pk")
        rows = visible_rows(rows, request.user)
        return Response({"lwta_networks": [lwta_summary(row) for row in rows]})

    @extend_schema(operation_id="atlas_lwta_create", request=dict,
                   responses={202: JOB_SCHEMA, 400: None})  # fmt: skip
    def post(self, request: Request) -> Response:
        return queue_from_body(request, lwta.do_queue_lwta_params)
