"""Seed-compatible endpoints: older clients and load generators use these; keep them exactly.

- ``POST /`` with multipart ``image`` and ``Accept: application/json``:
  202 ``{"original", "small", "medium", "large"}`` (extra keys allowed).
- ``POST /api/register`` (form ``username``, ``password``): only with
  ``OPEN_REGISTRATION``.
- ``POST /api/upload`` (multipart ``username``, ``password``, ``file``):
  202, the image's payload plus ``num_faces``, ``num_masked``,
  ``num_unmasked`` (integers once the analysis worker has answered, within
  ANALYSIS_WAIT_SECONDS; else null, with ``mask_reason`` and
  ``status_url``), docs/analysis.md.
  Both answer ``{"success": true, ...}`` or
  ``{"success": false, "error": {"code": <http status>, "message": ...}}``.

Belongs here: these endpoints' HTTP, nothing else. Uploads go through
``uploads.accept_upload`` like every other door; error shapes are
``http_errors``'s.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import doors
from .api import ModeAccess, UploadThrottleMixin
from .auth import LockoutAwareBasicAuthentication
from .credentials import authenticate_password
from .errors import ImageshareError
from .http_errors import api_error, seed_error, seed_response
from .links import image_urls
from .models import Analysis, Image
from .payloads import analysis_payload, face_counts, image_payload
from .uploads import accept_upload

USERNAME_MAX = 64


class SeedUploadView(UploadThrottleMixin, APIView):
    """``POST /`` for JSON clients (the home view hands these requests here)."""

    parser_classes = [MultiPartParser, FormParser]
    permission_classes = [ModeAccess]
    anonymous_methods = ("POST",)
    # A token or basic auth, never the session cookie: this door takes no CSRF
    # token (the documented curl line sends none), so a cookie alone must not
    # authorise it, or any site could upload in a logged-in visitor's name.
    authentication_classes = [TokenAuthentication, LockoutAwareBasicAuthentication]

    @extend_schema(exclude=True)
    def post(self, request):
        # A callable, so the body is parsed only once its declared length passed.
        image = accept_upload(
            request.user,
            lambda: request.FILES.get("image"),
            declared_length=request.META.get("CONTENT_LENGTH"),
        )
        body = {**image_urls(image, request), "id": str(image.id), "status": image.status}
        return Response(body, status=202)

    def http_method_not_allowed(self, request, *args, **kwargs):
        return api_error(405, "method_not_allowed", f"{request.method} is not allowed here; POST an image.")


def _json_405(request):
    return seed_error(405, f"{request.method} is not allowed; use POST.")


# These take credentials in the form itself (no session), so no CSRF applies.
@csrf_exempt
def register(request):
    if request.method != "POST":
        return _json_405(request)
    if not settings.OPEN_REGISTRATION:
        return seed_error(404, "Registration is not open on this server; ask an administrator for an account.")
    # Registrations are limited per address. A taken name answers 409: a
    # client must learn to pick another, so names are not secret here; the
    # limit keeps anyone from listing them quickly (documented in the README).
    try:
        doors.check_address(request, "register", "REGISTRATIONS_PER_ADDRESS", "registrations")
    except ImageshareError as exc:
        return seed_response(exc)
    username = request.POST.get("username", "")
    password = request.POST.get("password", "")
    if not username or not password:
        return seed_error(400, "Send form fields 'username' and 'password'.")
    if len(username) > USERNAME_MAX:
        return seed_error(400, f"The username is longer than {USERNAME_MAX} characters.")
    try:
        ASCIIUsernameValidator()(username)
        password_validation.validate_password(password, get_user_model()(username=username))
    except ValidationError as exc:
        return seed_error(400, " ".join(exc.messages))
    try:
        get_user_model().objects.create_user(username=username, password=password)
    except IntegrityError:
        return seed_error(409, "That username is taken.")
    return JsonResponse({"success": True}, status=201)


@csrf_exempt
def upload(request):
    if request.method != "POST":
        return _json_405(request)
    username = request.POST.get("username", "")
    password = request.POST.get("password", "")
    if not username or not password:
        return seed_error(400, "Send form fields 'username', 'password' and 'file'.")
    try:
        doors.address_exhausted(request, "login-failures", "LOGIN_FAILURES_PER_ADDRESS", "failed logins")
    except ImageshareError as exc:
        return seed_response(exc)
    try:
        user = authenticate_password(request, username, password)
    except ImageshareError as exc:
        return seed_response(exc)
    if user is None:
        doors.note_failed_login(request)
        if getattr(request, "axes_locked_out", False):
            return seed_error(429, "Too many failed logins for this account from here; try again later.")
        return seed_error(401, "Unknown username or wrong password.")
    try:
        # The body is parsed already (the credentials are form fields).
        image = accept_upload(
            user,
            request.FILES.get("file"),
            declared_length=request.META.get("CONTENT_LENGTH"),
            missing_message="No file was sent: use the multipart field 'file'.",
        )
    except ImageshareError as exc:
        return seed_response(exc)
    payload = image_payload(image, request)  # as accepted: "status" is the upload's, at acceptance
    analysis = _wait_for_analysis(image)
    if analysis is not None:
        image.analysis = analysis
    payload.update(face_counts(image))
    payload["analysis"] = analysis_payload(image, request)
    payload["status_url"] = request.build_absolute_uri(reverse("api-image", args=[image.id]))
    return JsonResponse({"success": True, "payload": payload}, status=202)


# Threads of this process waiting for an analysis now (gunicorn gthread: a few per process).
_waiters = threading.BoundedSemaphore(max(1, settings.ANALYSIS_WAITERS_PER_PROCESS))


def _wait_for_analysis(image: Image) -> Analysis | None:
    """The image's analysis once the worker has written it, polling the row (one primary-key read per
    50-100 ms) for up to ANALYSIS_WAIT_SECONDS; None past that, or when enough threads wait already.

    The web tier never runs the model. A waiting thread sleeps (no CPU, no
    GIL), but it is one of gunicorn's few threads: at most
    ANALYSIS_WAITERS_PER_PROCESS wait at once, the others answer at once
    with null counts and the status URL.
    """
    if settings.ANALYSIS_WAIT_SECONDS <= 0 or settings.ANALYSIS_WAITERS_PER_PROCESS <= 0:
        return None
    if not _waiters.acquire(blocking=False):
        return None
    try:
        started = time.monotonic()
        deadline = started + settings.ANALYSIS_WAIT_SECONDS
        while True:
            analysis = Analysis.objects.filter(image_id=image.id).first()
            if analysis is not None:
                return analysis
            now = time.monotonic()
            if now >= deadline:
                return None
            time.sleep(min(0.05 if now - started < 1 else 0.1, deadline - now))
    finally:
        _waiters.release()
