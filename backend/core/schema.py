"""The OpenAPI schema's post-processing: what every researcher operation may answer besides
its success, documented once. Each researcher view can refuse a body (400), a caller without
a token (401) or who is no researcher (403), a study, job or session the caller may not see
(404) and a state change that does not apply (409), all in the one error shape of
backend/core/errors.py; the schema says so for every operation, so a client (and schemathesis's
status_code_conformance) knows them."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}
ERROR_DESCRIPTIONS = {
    "400": "The body or a parameter is not valid.",
    "401": "No valid token or session.",
    "403": "The caller is not a researcher.",
    "404": "No such object among those the caller may see.",
    "409": "The change does not apply to the object's current state.",
}
RESEARCHER_PREFIX = "/api/v1/researcher/"


def add_error_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ApiError", ERROR_SCHEMA)
    reference = {"$ref": "#/components/schemas/ApiError"}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(RESEARCHER_PREFIX):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_DESCRIPTIONS.items():
                responses.setdefault(
                    status,
                    {"description": description,
                     "content": {"application/json": {"schema": reference}}},
                )  # fmt: skip
    return result
