"""Upload, lookup and permission logic shared by the web pages and the JSON API."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from thumbnails import engine

from .models import Image, Rendition
from .storage import original_key, rendition_key

log = logging.getLogger(__name__)

STANDARD_NAMES = tuple(spec.name for spec in reversed(engine.STANDARD_SPECS))  # small, medium, large
STORAGE_ERRORS = (BotoCoreError, ClientError)


class UploadError(Exception):
    """A refused request, with an HTTP status and a stable code for the API."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# --- who sees what ---------------------------------------------------------------
def is_open() -> bool:
    return settings.IMAGESHARE_MODE == "open"


def visible_images(user):
    """Images ``user`` may see: their own in private mode, any in open mode."""
    qs = Image.objects.prefetch_related("renditions")
    if is_open():
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(owner=user)


def find_visible(user, image_id) -> Image | None:
    """The image, or None when it does not exist *or* the user may not see it (both answer 404)."""
    try:
        return visible_images(user).get(pk=image_id)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError):  # a malformed id is "not found" too
        return None


def owned_or_404(user, image_id) -> Image:
    """The image if ``user`` owns it (deleting, retrying and adding renditions are the owner's, in both modes).

    Otherwise Http404, which DRF answers as its JSON 404: the same answer for
    "not there" and "not yours", so ids leak nothing.
    """
    image = find_visible(user, image_id)
    if image is None or not user.is_authenticated or image.owner_id != user.pk:
        raise Http404("No such image.")
    return image


# --- uploads ---------------------------------------------------------------------
def check_size(size: int | None) -> None:
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        raise UploadError(
            413, "too_large", f"The file is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES} bytes."
        )


def validate_bytes(data: bytes) -> engine.Probe:
    """Check the size, then the decoded header (format, pixel count)."""
    check_size(len(data))
    if not data:
        raise UploadError(400, "empty_file", "The file is empty.")
    try:
        return engine.probe(data, max_pixels=settings.MAX_IMAGE_PIXELS)
    except engine.UnsupportedFormat as exc:
        raise UploadError(415, exc.code, exc.message) from exc
    except engine.TooManyPixels as exc:
        raise UploadError(413, exc.code, exc.message) from exc
    except engine.EngineError as exc:
        raise UploadError(400, exc.code, exc.message) from exc


def read_upload(uploaded) -> bytes:
    if uploaded is None:
        raise UploadError(400, "missing_image", "No image was sent: use the multipart field 'image'.")
    check_size(uploaded.size)  # before reading it into memory
    uploaded.seek(0)
    return uploaded.read()


def create_image(owner, uploaded) -> Image:
    """Store an uploaded file (Django's UploadedFile) and queue its renditions."""
    return store_image(owner, read_upload(uploaded), getattr(uploaded, "name", "") or "")


def store_image(owner, data: bytes, name: str) -> Image:
    """Store an image and queue its renditions.

    1. Validate (size, format, pixels) before anything is stored.
    2. Put the original in S3 under a fresh id.
    3. Record the image and queue the resize task once the row is committed,
       so a worker never looks for a row that is not there yet.
    4. If the queue cannot be reached, undo steps 2-3 and report 503: the user
       is told to retry, and nothing is left half-stored.
    """
    probe = validate_bytes(data)
    from thumbnails.tasks import make_renditions

    image = Image(
        owner=owner if owner is not None and owner.is_authenticated else None,
        original_name=name[:255],
        content_type=probe.mime,
        width=probe.width,
        height=probe.height,
        byte_size=len(data),
    )
    image.original_key = original_key(image.id)
    blob = ContentFile(data)
    blob.content_type = probe.mime
    try:
        default_storage.save(image.original_key, blob)
    except STORAGE_ERRORS as exc:
        log.warning("storage unavailable for upload %s: %s", image.id, exc)
        raise UploadError(503, "storage_unavailable", "Storage is unavailable; try again shortly.") from exc
    try:
        with transaction.atomic():
            image.enqueued_at = timezone.now()
            image.save(force_insert=True)
            make_renditions.delay_on_commit(str(image.id))
    except Exception as exc:
        # The commit happened before the callback ran; undo what we can.
        log.warning("queue unavailable for upload %s: %s", image.id, exc)
        Image.objects.filter(pk=image.pk).delete()
        try:
            default_storage.delete(image.original_key)
        except STORAGE_ERRORS:
            log.exception("could not remove original %s", image.original_key)
        raise UploadError(503, "queue_unavailable", "The processing queue is unavailable; try again shortly.") from exc
    return image


def delete_image(image: Image) -> None:
    """Remove the S3 objects first, then the row: a failure leaves the image listed (and deletable again)."""
    prefix = f"renditions/{image.id}/"
    try:
        _, files = default_storage.listdir(prefix)
        for name in files:
            default_storage.delete(prefix + name)
        default_storage.delete(image.original_key)
    except STORAGE_ERRORS as exc:
        raise UploadError(503, "storage_unavailable", "Storage is unavailable; try again shortly.") from exc
    image.delete()


def request_rendition(image: Image, width: int, height: int, mode: str) -> tuple[str, Rendition | None]:
    """Queue an extra rendition (or return it when it exists). Returns (name, rendition or None)."""
    try:
        spec = engine.Spec(custom_name(width, height, mode), width, height, mode)
    except engine.InvalidSpec as exc:
        raise UploadError(400, exc.code, exc.message) from exc
    if image.status == Image.Status.FAILED:
        raise UploadError(409, "image_failed", "The original could not be processed, so no rendition can be made.")
    existing = image.renditions.filter(name=spec.name).first()
    if existing:
        return spec.name, existing
    from thumbnails.tasks import make_renditions

    try:
        make_renditions.delay(str(image.id), [{"name": spec.name, "width": width, "height": height, "mode": mode}])
    except Exception as exc:
        raise UploadError(503, "queue_unavailable", "The processing queue is unavailable; try again shortly.") from exc
    return spec.name, None


# Failures a second attempt can cure: a worker that crashed or was killed on
# every delivery (dead-lettered), transient errors past their retries or an
# unexpected error, a time-out under load. The engine's refusals (corrupt,
# unsupported, too many pixels) and lost files would fail the same way again.
RETRYABLE_FAILURES = frozenset({"processing_crashed", "processing_error", "timeout"})


def can_retry(image: Image) -> bool:
    return image.status == Image.Status.FAILED and image.failure_code in RETRYABLE_FAILURES


def retryable_images():
    """``can_retry`` as a query: every image it holds for."""
    return Image.objects.filter(status=Image.Status.FAILED, failure_code__in=RETRYABLE_FAILURES)


def retry_image(image: Image) -> Image:
    """Queue a failed image again; the original was kept for this.

    1. Refuse (409) unless the image failed in a way a retry can cure.
    2. Back to pending, and queue the resize task once that is committed.
    3. If the queue cannot be reached, put the failure back and report 503:
       the image never sits "pending" with no message behind it.
    """
    if image.status != Image.Status.FAILED:
        raise UploadError(409, "not_failed", "Only a failed image can be retried.")
    if not can_retry(image):
        raise UploadError(
            409, "not_retryable", f"{image.failure_reason or image.failure_code} Trying again would fail the same way."
        )
    from thumbnails.tasks import make_renditions

    failed = {"status": image.status, "failure_code": image.failure_code, "failure_reason": image.failure_reason}
    try:
        with transaction.atomic():
            now = timezone.now()
            claimed = Image.objects.filter(pk=image.pk, status=Image.Status.FAILED).update(
                status=Image.Status.PENDING, failure_code="", failure_reason="", enqueued_at=now, updated_at=now
            )
            if claimed:  # two clicks at once queue it once
                make_renditions.delay_on_commit(str(image.id))
    except Exception as exc:
        log.warning("queue unavailable for retry of %s: %s", image.id, exc)
        Image.objects.filter(pk=image.pk, status=Image.Status.PENDING).update(**failed, updated_at=timezone.now())
        raise UploadError(503, "queue_unavailable", "The processing queue is unavailable; try again shortly.") from exc
    image.refresh_from_db()
    return image


def custom_name(width: int, height: int, mode: str) -> str:
    return f"{width}x{height}-{mode}"


# --- URLs ------------------------------------------------------------------------
def file_url(image: Image, name: str, request=None) -> str:
    """Where a browser gets ``name`` ("original", "small", "400x400-fill", ...).

    Open mode: the public object URL (or the CDN's). Private mode: the app's
    own URL, which checks permission and redirects to a short-lived presigned
    S3 URL.
    """
    key = _key_for(image, name)
    if is_open():
        if settings.CDN_BASE_URL:
            return f"{settings.CDN_BASE_URL}/{key}"
        return public_url(key)
    path = reverse("image-file", args=[image.id, name])
    return request.build_absolute_uri(path) if request is not None else path


def _key_for(image: Image, name: str) -> str:
    """The S3 key of a named file, known before the rendition exists (keys are fixed)."""
    if name == "original":
        return image.original_key
    if "." in name:  # an extra encoding, e.g. "small.webp"
        base, ext = name.rsplit(".", 1)
        return rendition_key(image.id, base, ext, main=False)
    return rendition_key(image.id, name, "", main=True)


def public_url(key: str) -> str:
    # django-storages signs every URL when querystring auth is on; the object
    # URL is the part before the signature (same endpoint, bucket and key).
    return default_storage.url(key).split("?", 1)[0]


def presigned_url(image: Image, name: str) -> str | None:
    """A short-lived signed URL for a file that exists, else None."""
    if name != "original" and not image.renditions.filter(name=name).exists():
        return None
    return default_storage.url(_key_for(image, name), expire=settings.PRESIGNED_REDIRECT_TTL)


def image_urls(image: Image, request=None) -> dict[str, str]:
    """URLs of the original and the standard renditions, known before they exist."""
    urls = {"original": file_url(image, "original", request)}
    for name in STANDARD_NAMES:
        urls[name] = file_url(image, name, request)
    return urls


def image_payload(image: Image, request=None) -> dict:
    renditions = {
        r.name: {
            "width": r.width,
            "height": r.height,
            "content_type": r.content_type,
            "bytes": r.byte_size,
            "url": file_url(image, r.name, request),
        }
        for r in image.renditions.all()
    }
    payload = {
        "id": str(image.id),
        "status": image.status,
        "name": image.original_name,
        "width": image.width,
        "height": image.height,
        "bytes": image.byte_size,
        "content_type": image.content_type,
        "created_at": image.created_at.isoformat() if image.created_at else None,
        "ready_at": image.ready_at.isoformat() if image.ready_at else None,
        "urls": image_urls(image, request),
        "renditions": renditions,
    }
    if request is not None:
        payload["page"] = request.build_absolute_uri(reverse("image", args=[image.id]))
    if image.status == Image.Status.FAILED:
        payload["error"] = {"code": image.failure_code, "message": image.failure_reason}
        payload["retryable"] = can_retry(image)
    return payload
