"""Serving media where no nginx does (demo, tests): content-hash names never change, so they are
cached for a long time and need no validators. No `Last-Modified` (and no answer to
`If-Modified-Since`): a file's time is when it was imported, and the import order predicted the
correct query of most trials. deploy/nginx.conf does the same in production."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse
from django.views.static import serve

VALIDATOR_HEADERS = ("Last-Modified", "ETag")


def serve_media(request: HttpRequest, path: str) -> HttpResponse | FileResponse:
    request.META.pop("HTTP_IF_MODIFIED_SINCE", None)
    response = serve(request, path, document_root=str(settings.MEDIA_ROOT))
    for header in VALIDATOR_HEADERS:
        if header in response:
            del response[header]
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response
