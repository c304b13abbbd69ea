"""The JSON API, /api/v1/. Errors are always {"error": {"code", "message"}}.

Belongs here: the API's views, serializers and schema, the permission and
throttle classes the seed endpoints share, and DRF's exception handler.
They only translate HTTP to calls: the rules are in ``uploads``,
``commands`` and ``access``; the error shapes in ``http_errors``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxValueValidator, RegexValidator
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from thumbnails.engine import MAX_SPEC_SIDE

from . import direct, quotas
from .access import find_visible, is_open, owned_or_404
from .commands import delete_image, request_rendition, retry_image
from .credentials import authenticate_password
from .errors import ImageshareError
from .http_errors import api_error, api_response
from .links import file_url, presigned_url
from .models import Image
from .payloads import image_payload
from .remote import MAX_URL_LENGTH
from .uploads import RemoteURL, Source, accept_upload

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}

ERROR_SCHEMA = inline_serializer(
    "Error",
    {"error": inline_serializer("ErrorBody", {"code": serializers.CharField(), "message": serializers.CharField()})},
)
IMAGE_SCHEMA = inline_serializer(
    "Image",
    {
        "id": serializers.UUIDField(),
        "status": serializers.ChoiceField(choices=Image.Status.values),
        "name": serializers.CharField(),
        "width": serializers.IntegerField(),
        "height": serializers.IntegerField(),
        "bytes": serializers.IntegerField(),
        "content_type": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "ready_at": serializers.DateTimeField(allow_null=True),
        "urls": serializers.DictField(child=serializers.URLField()),
        "renditions": serializers.DictField(),
        "page": serializers.URLField(),
        "error": serializers.DictField(required=False),
    },
)


def exception_handler(exc, context):
    """Wrap DRF's handler so every error has the same JSON shape."""
    if isinstance(exc, ImageshareError):
        return api_response(exc)
    if isinstance(exc, (Http404, DjangoValidationError)):
        exc = exceptions.NotFound("No such image.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: Django logs it; handler500 answers JSON under /api/
    detail = getattr(exc, "detail", None)
    if isinstance(detail, dict):  # serializer errors: field -> [messages]
        field, msgs = next(iter(detail.items()))
        message = f"{field}: {msgs[0] if isinstance(msgs, list) and msgs else msgs}"
        code = "invalid"
    elif isinstance(detail, list):
        message, code = str(detail[0]) if detail else "Invalid request.", "invalid"
    else:
        message = str(detail or exc)
        code = getattr(detail, "code", None) or _CODES.get(response.status_code, "error")
    response.data = {"error": {"code": str(code), "message": message}}
    return response


class ModeAccess(BasePermission):
    """Private mode: accounts only. Open mode: anyone may upload and view; listing and deleting need an account."""

    def has_permission(self, request, view):
        if request.user and request.user.is_authenticated:
            return True
        return is_open() and request.method in getattr(view, "anonymous_methods", ())


class UploadFileSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="The image file.")


class UploadURLSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=MAX_URL_LENGTH,
        validators=[RegexValidator(r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$")],
        help_text="A public http(s) URL to fetch the image from.",
    )


class RenditionRequestSerializer(serializers.Serializer):
    width = serializers.IntegerField(min_value=1, max_value=MAX_SPEC_SIDE)
    height = serializers.IntegerField(min_value=1, max_value=MAX_SPEC_SIDE)
    mode = serializers.ChoiceField(choices=["fit", "fill"], default="fit")


def upload_from_request(request) -> Image:
    """A multipart ``image`` file, or JSON/form ``url`` to fetch."""

    def source() -> Source | None:
        uploaded = request.FILES.get("image")
        if uploaded is not None:
            return uploaded
        url = request.data.get("url") if hasattr(request.data, "get") else None
        return RemoteURL(url) if url else None

    # A callable, so the body is parsed only once its declared length passed.
    return accept_upload(
        request.user,
        source,
        declared_length=request.META.get("CONTENT_LENGTH"),
        missing_message="Send a multipart field 'image', or JSON {\"url\": ...}.",
    )


class UploadThrottleMixin:
    """The "uploads" rate applies to POST only: listing and polling use the user/anon rates."""

    throttle_scope = "uploads"

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method != "POST":
            return [t for t in throttles if not isinstance(t, ScopedRateThrottle)]
        return throttles


class ImageListView(UploadThrottleMixin, APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    permission_classes = [ModeAccess]
    anonymous_methods = ("POST",)

    @extend_schema(
        summary="List your images",
        parameters=[
            OpenApiParameter("status", str, enum=Image.Status.values),
            OpenApiParameter("limit", int, description="1..100, default 20"),
            OpenApiParameter("offset", int),
        ],
        responses={
            200: inline_serializer(
                "ImageList",
                {
                    "count": serializers.IntegerField(),
                    "limit": serializers.IntegerField(),
                    "offset": serializers.IntegerField(),
                    "results": IMAGE_SCHEMA.__class__(many=True),
                },
            ),
            400: ERROR_SCHEMA,
            401: ERROR_SCHEMA,
        },
    )
    def get(self, request):
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        qs = Image.objects.filter(owner=request.user).select_related("analysis").prefetch_related("renditions")
        wanted = request.query_params.get("status")
        if wanted is not None:  # present but empty is as wrong as any other value outside the enum
            if wanted not in Image.Status.values:
                return api_error(400, "invalid_status", f"status must be one of {', '.join(Image.Status.values)}")
            qs = qs.filter(status=wanted)
        try:
            limit = min(max(int(request.query_params.get("limit", 20)), 1), 100)
            offset = min(max(int(request.query_params.get("offset", 0)), 0), 10**9)
        except ValueError:
            return api_error(400, "invalid_page", "limit and offset must be integers")
        total = qs.count()
        items = [image_payload(i, request) for i in qs[offset : offset + limit]]
        return Response({"count": total, "limit": limit, "offset": offset, "results": items})

    @extend_schema(
        summary="Upload an image (multipart file or JSON url)",
        request={"multipart/form-data": UploadFileSerializer, "application/json": UploadURLSerializer},
        responses={
            202: IMAGE_SCHEMA,
            **{code: ERROR_SCHEMA for code in (400, 401, 409, 413, 415, 429, 503)},
        },
    )
    def post(self, request):
        image = upload_from_request(request)
        return Response(image_payload(image, request), status=status.HTTP_202_ACCEPTED)


class _UploadLimit(MaxValueValidator):
    """At most MAX_UPLOAD_BYTES, read when a request is validated (and when the schema is made), not at import."""

    def __init__(self) -> None:
        super().__init__(0, message="Ensure this value is less than or equal to %(limit_value)s (max_bytes).")

    @property  # type: ignore[override]
    def limit_value(self) -> int:
        return int(settings.MAX_UPLOAD_BYTES)

    @limit_value.setter
    def limit_value(self, _value: int) -> None:  # BaseValidator.__init__ sets it: the setting is the limit
        pass


class PresignRequestSerializer(serializers.Serializer):
    content_type = serializers.ChoiceField(
        choices=direct.ALLOWED_CONTENT_TYPES,
        required=False,
        help_text="The file's type: fixed in the policy. Without it, send a Content-Type field starting image/.",
    )
    size = serializers.IntegerField(
        min_value=1,
        validators=[_UploadLimit()],
        required=False,
        help_text="The file's length in bytes: over the limit (max_bytes), 400 before anything is sent.",
    )


class FinalizeRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, help_text="The file's name.")


PRESIGNED_SCHEMA = inline_serializer(
    "DirectUpload",
    {
        "upload_id": serializers.UUIDField(),
        "url": serializers.URLField(help_text="POST the form here (multipart/form-data): the fields, then file."),
        "fields": serializers.DictField(child=serializers.CharField()),
        "key": serializers.CharField(),
        "expires_at": serializers.DateTimeField(),
        "max_bytes": serializers.IntegerField(),
        "finalize_url": serializers.URLField(),
    },
)


class DirectUploadView(UploadThrottleMixin, APIView):
    """POST /api/v1/uploads: a presigned S3 POST for one file (docs/uploads.md)."""

    parser_classes = [JSONParser]  # JSON only: a form body has no type to refuse
    permission_classes = [ModeAccess]
    anonymous_methods = ("POST",)

    @extend_schema(
        summary="Start a direct upload: a presigned S3 POST for one file",
        request=PresignRequestSerializer,
        responses={201: PRESIGNED_SCHEMA, **{code: ERROR_SCHEMA for code in (400, 401, 413, 429, 503)}},
    )
    def post(self, request):
        body = PresignRequestSerializer(data=request.data)  # a JSON list or string: 400
        body.is_valid(raise_exception=True)
        presigned = direct.presign(request.user, **body.validated_data)
        finalize = reverse("api-upload-finalize", args=[presigned.upload_id])
        return Response(
            {
                "upload_id": str(presigned.upload_id),
                "url": presigned.url,
                "fields": presigned.fields,
                "key": presigned.key,
                "expires_at": presigned.expires_at.isoformat(),
                "max_bytes": settings.MAX_UPLOAD_BYTES,
                "finalize_url": request.build_absolute_uri(finalize),
            },
            status=status.HTTP_201_CREATED,
        )


class FinalizeView(UploadThrottleMixin, APIView):
    """POST /api/v1/uploads/<upload id>/finalize: the file is in S3; make the image."""

    parser_classes = [JSONParser]  # JSON only: a form body has no type to refuse
    permission_classes = [ModeAccess]
    anonymous_methods = ("POST",)

    @extend_schema(
        summary="Finish a direct upload: validate the file in S3 and make the image",
        request=FinalizeRequestSerializer,
        responses={
            200: OpenApiResponse(IMAGE_SCHEMA, description="Finalized before: the same image"),
            202: OpenApiResponse(IMAGE_SCHEMA, description="The image, pending its renditions"),
            **{code: ERROR_SCHEMA for code in (400, 401, 404, 409, 413, 415, 429, 503)},
        },
    )
    def post(self, request, upload_id):
        body = FinalizeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image, created = direct.finalize(
            request.user, direct.parse_upload_id(upload_id), body.validated_data.get("name", "")
        )
        return Response(
            image_payload(image, request), status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        )


class ImageDetailView(APIView):
    permission_classes = [ModeAccess]
    anonymous_methods = ("GET", "HEAD")

    @extend_schema(summary="One image", responses={200: IMAGE_SCHEMA, 401: ERROR_SCHEMA, 404: ERROR_SCHEMA})
    def get(self, request, image_id):
        image = find_visible(request.user, image_id)
        if image is None:
            raise exceptions.NotFound("No such image.")
        return Response(image_payload(image, request))

    @extend_schema(
        summary="Delete one of your images (and its files)",
        responses={204: None, 401: ERROR_SCHEMA, 404: ERROR_SCHEMA, 503: ERROR_SCHEMA},
    )
    def delete(self, request, image_id):
        image = owned_or_404(request.user, image_id)
        delete_image(image)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RetryView(APIView):
    permission_classes = [ModeAccess]

    @extend_schema(
        summary="Try a failed image of yours again",
        request=None,
        responses={202: IMAGE_SCHEMA, **{code: ERROR_SCHEMA for code in (401, 404, 409, 503)}},
    )
    def post(self, request, image_id):
        image = owned_or_404(request.user, image_id)
        return Response(image_payload(retry_image(image), request), status=status.HTTP_202_ACCEPTED)


class RenditionView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    permission_classes = [ModeAccess]

    @extend_schema(
        summary="Ask for an extra rendition of one of your images",
        request=RenditionRequestSerializer,
        responses={
            200: OpenApiResponse(description="It exists already"),
            202: OpenApiResponse(description="Queued"),
            **{code: ERROR_SCHEMA for code in (400, 401, 404, 409, 503)},
        },
    )
    def post(self, request, image_id):
        image = owned_or_404(request.user, image_id)
        body = RenditionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        name, existing = request_rendition(image, **body.validated_data)
        payload = {"name": name, "url": file_url(image, name, request), "status": "ready" if existing else "pending"}
        if existing:
            payload.update(width=existing.width, height=existing.height, content_type=existing.content_type)
        return Response(payload, status=status.HTTP_200_OK if existing else status.HTTP_202_ACCEPTED)


class FileView(APIView):
    """/i/<id>/<name>: check permission, then redirect to a short-lived presigned URL."""

    permission_classes = [ModeAccess]
    anonymous_methods = ("GET", "HEAD")

    def perform_content_negotiation(self, request, force=False):
        # An <img> tag asks for image/*: never answer 406 to it.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(exclude=True)
    def get(self, request, image_id, name):
        image = find_visible(request.user, image_id)
        url = presigned_url(image, name) if image is not None else None
        if url is None:
            raise exceptions.NotFound("No such file (yet).")
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "private, no-store"
        return response


class AccountView(APIView):
    """Who you are and what you store, against your quota."""

    @extend_schema(
        summary="Your account and its storage",
        responses={
            200: inline_serializer(
                "Account",
                {
                    "username": serializers.CharField(),
                    "storage": inline_serializer(
                        "Storage",
                        {
                            "used_bytes": serializers.IntegerField(),
                            "quota_bytes": serializers.IntegerField(allow_null=True),
                        },
                    ),
                },
            ),
            401: ERROR_SCHEMA,
        },
    )
    def get(self, request):
        return Response({"username": request.user.get_username(), "storage": quotas.usage(request.user)})


class TokenView(APIView):
    """Trade a username and password for an API token (for scripts)."""

    permission_classes = []
    authentication_classes = []
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        summary="Get your API token",
        request=inline_serializer(
            "TokenRequest", {"username": serializers.CharField(), "password": serializers.CharField()}
        ),
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            400: ERROR_SCHEMA,
            401: ERROR_SCHEMA,
        },
    )
    def post(self, request):
        data = request.data if hasattr(request.data, "get") else {}  # a JSON list or scalar is no credentials
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            return api_error(400, "missing_credentials", "Send 'username' and 'password'.")
        user = authenticate_password(request._request, username, password)
        if user is None:
            return api_error(401, "invalid_credentials", "Unknown username or wrong password.")
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
