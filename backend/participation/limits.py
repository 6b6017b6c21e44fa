"""Request limits of the participant API: a 64 KiB body cap (413) and the per-IP rate limit on
session starts.

The rate limit counts in the cache (Redis); the participant path must not depend on Redis, so
when the cache cannot be reached the limit lets the request through rather than fail it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from backend.core.errors import ApiError
from backend.core.strictjson import StrictJSONParser

MAX_BODY_BYTES = 64 * 1024

logger = logging.getLogger(__name__)


def too_large() -> ApiError:
    return ApiError("too_large", f"The request body is over {MAX_BODY_BYTES // 1024} KiB.", 413)


class CappedJSONParser(StrictJSONParser):
    """Strict JSON bodies of at most MAX_BODY_BYTES; a larger one is refused before it is
    parsed."""

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        if stream is None:
            return {}
        request = (parser_context or {}).get("request")
        length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise too_large()
        body = stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise too_large()
        return super().parse(io.BytesIO(body), media_type, parser_context)


class SessionStartThrottle(SimpleRateThrottle):
    """Session starts per client IP, at the rate `session_create` of REST_FRAMEWORK."""

    scope = "session_create"

    def get_rate(self) -> str | None:
        framework: dict[str, Any] = settings.REST_FRAMEWORK
        rates: dict[str, Any] = framework["DEFAULT_THROTTLE_RATES"]
        rate = rates.get(self.scope)
        return str(rate) if rate else None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the cache is down: starting a session matters more than the limit
            logger.warning("session start rate limit skipped: cache unavailable", exc_info=True)
            return True
