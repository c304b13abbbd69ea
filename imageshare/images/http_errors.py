"""How a refusal answers over HTTP: the one status table and the three shapes.

Belongs here: which status each kind of ``errors.ImageshareError`` answers,
and how each door renders an error:

- the JSON API (``/api/v1/``, ``POST /`` for JSON clients, JSON 404/500/429
  pages): ``{"error": {"code": <stable code>, "message": ...}}``;
- the seed endpoints (``/api/register``, ``/api/upload``):
  ``{"success": false, "error": {"code": <http status>, "message": ...}}``;
- the pages: the message as a Django message, and the status for the template.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, JsonResponse
from rest_framework.response import Response

from .errors import BadInput, Conflict, ImageshareError, NotFound, RateLimited, TooLarge, Unavailable, UnsupportedType

STATUS_BY_KIND: dict[type[ImageshareError], int] = {
    BadInput: 400,
    Conflict: 409,
    NotFound: 404,
    TooLarge: 413,
    RateLimited: 429,
    UnsupportedType: 415,
    Unavailable: 503,
}


def http_status(exc: ImageshareError) -> int:
    """The status of ``exc``'s kind (the nearest listed class it inherits from)."""
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400  # a bare ImageshareError: a refusal of the request, so a client error


# --- the JSON API's shape ------------------------------------------------------------
def _api_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def api_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's error as a DRF response (from an APIView or the exception handler)."""
    return Response(_api_body(code, message), status=status, headers=headers)


def api_error_json(status: int, code: str, message: str) -> JsonResponse:
    """The API's error from a plain Django view (DRF's renderers are not in play there)."""
    return JsonResponse(_api_body(code, message), status=status)


def retry_headers(exc: ImageshareError) -> dict[str, str] | None:
    """``Retry-After`` for a refusal that says when to come back."""
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(retry_after)} if retry_after else None


def api_response(exc: ImageshareError) -> Response:
    return api_error(http_status(exc), exc.code, exc.message, headers=retry_headers(exc))


# --- the seed endpoints' shape ---------------------------------------------------------
def seed_error(status: int, message: str) -> JsonResponse:
    """Older clients read the HTTP status as the error's code: keep it that way."""
    return JsonResponse({"success": False, "error": {"code": status, "message": message}}, status=status)


def seed_response(exc: ImageshareError) -> JsonResponse:
    response = seed_error(http_status(exc), exc.message)
    for name, value in (retry_headers(exc) or {}).items():
        response[name] = value
    return response


# --- the pages -------------------------------------------------------------------------
def show_on_page(request: HttpRequest, exc: ImageshareError, about: str = "") -> int:
    """Put ``exc``'s message on the next page (prefixed by ``about``, e.g. a file name); return its status."""
    messages.error(request, f"{about}: {exc.message}" if about else exc.message)
    return http_status(exc)
