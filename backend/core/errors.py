"""One error shape for every API: `{"error": "<code>", "message": "<sentence>"}` with a 4xx.

Views raise `ApiError` (or DRF's exceptions); the handler turns them into that shape so the
participant page and researchers' scripts can show the message as it is.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(exceptions.APIException):
    """A 4xx with a machine-readable code and a message for a person."""

    def __init__(self, code: str, message: str, status_code: int = 400, **extra: Any) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.extra = extra


def _message(detail: Any) -> str:
    if isinstance(detail, dict):
        parts = [f"{field}: {_message(value)}" for field, value in detail.items()]
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_message(item) for item in detail)
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ApiError):
        body: dict[str, Any] = {"error": exc.error_code, "message": str(exc.detail), **exc.extra}
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if not isinstance(exc.detail, (dict, list)) else "invalid"
        body = {"error": str(code), "message": _message(exc.detail)}
        if isinstance(exc.detail, dict):
            body["fields"] = exc.detail
    else:  # pragma: no cover - DRF only handles APIException and Http404
        body = {"error": "error", "message": str(exc)}
    response.data = body
    return response


def json_error(request: HttpRequest, code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status_code)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.page_not_found(request, exception or Http404())
    return json_error(request, "not_found", "Not found.", status.HTTP_404_NOT_FOUND)


def handler500(request: HttpRequest) -> HttpResponse:
    """An unexpected error: JSON on the API (the page shows the message; nothing of the error
    leaves the server), Django's plain page elsewhere. With DEBUG off neither has a traceback."""
    if not request.path.startswith("/api/"):
        return defaults.server_error(request)
    message = "Something went wrong on the server. Please try again in a moment."
    return json_error(request, "server_error", message, status.HTTP_500_INTERNAL_SERVER_ERROR)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.permission_denied(request, exception or PermissionError())
    return json_error(request, "forbidden", "Forbidden.", status.HTTP_403_FORBIDDEN)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if not request.path.startswith("/api/"):
        return defaults.bad_request(request, exception or ValueError())
    return json_error(request, "bad_request", "Bad request.", status.HTTP_400_BAD_REQUEST)
