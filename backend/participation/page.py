"""The participant page, `GET /s/<slug>/`: the built frontend's index.html as it is.

The page itself carries nothing about the study (it asks the API), so one file serves every
study; unknown slugs get the 404 page, and a missing build a plain 503 that says what to do.

It is the one page that may be framed, and only by the sites in PARTICIPANT_FRAME_ANCESTORS
(MTurk shows an ExternalQuestion in an iframe): `Content-Security-Policy: frame-ancestors`
instead of the `X-Frame-Options: DENY` every other page keeps.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from backend.studies.models import Study


def frame_ancestors() -> str:
    return " ".join(["'self'", *settings.PARTICIPANT_FRAME_ANCESTORS])


@xframe_options_exempt
@require_safe
def participant_page(request: HttpRequest, slug: str) -> HttpResponse:
    if not Study.objects.filter(slug=slug).exists():
        raise Http404("There is no study at this address.")
    index = settings.FRONTEND_DIST / "index.html"
    try:
        html = index.read_bytes()
    except FileNotFoundError:
        return HttpResponse(
            "frontend not built: run make", status=503, content_type="text/plain; charset=utf-8"
        )
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # A new build must reach the next participant; the hashed assets are cached instead.
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
    return response
