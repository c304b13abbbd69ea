"""What an owner (or staff) can do to an image once it exists: delete it, ask for a size, retry it.

Belongs here: the commands on stored images, and the retry rule
(``can_retry`` and its query side by side). Uploading is ``uploads``'s;
finding the image and checking it is yours is ``access``'s, done by the
caller. Refusals are ``errors`` kinds, never HTTP.
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from thumbnails import engine

from . import quotas
from .errors import Conflict, Unavailable, from_engine
from .models import Analysis, Image, Rendition
from .storage import STORAGE_ERRORS

log = logging.getLogger(__name__)


def _remove_objects(image: Image) -> None:
    prefix = f"renditions/{image.id}/"
    _, files = default_storage.listdir(prefix)
    for name in files:
        default_storage.delete(prefix + name)
    default_storage.delete(image.original_key)


def delete_image(image: Image) -> None:
    """Delete an image for good, even while a worker is making its renditions.

    1. Remove its S3 objects: a storage failure leaves the image listed (and
       deletable again).
    2. Delete the row.
    3. Remove its objects again: a worker may have written one between 1 and
       2. A worker that writes after 2 finds the row gone when it records,
       and removes what it wrote itself (thumbnails.tasks).
    """
    try:
        _remove_objects(image)
    except STORAGE_ERRORS as exc:
        raise Unavailable.storage() from exc
    image_id = image.id
    image.delete()
    image.id = image_id  # Django clears it; step 3 needs the prefix
    try:
        _remove_objects(image)
    except STORAGE_ERRORS:
        log.warning("objects of deleted image %s left for the orphan sweep", image_id)


def request_rendition(image: Image, width: int, height: int, mode: str) -> tuple[str, Rendition | None]:
    """Queue an extra rendition (or return it when it exists). Returns (name, rendition or None)."""
    try:
        spec = engine.Spec(custom_name(width, height, mode), width, height, mode)
    except engine.InvalidSpec as exc:
        raise from_engine(exc) from exc
    if image.status == Image.Status.FAILED:
        raise Conflict("image_failed", "The original could not be processed, so no rendition can be made.")
    existing = image.renditions.filter(name=spec.name).first()
    if existing:
        return spec.name, existing
    from thumbnails.tasks import make_renditions

    # One owner's requests in turn (a lock on the owner's row): the caps are
    # read, then counted, and concurrent requests must not both slip through.
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=image.owner_id).first()
        quotas.check_extra_size(image, spec.name, width, height)
        try:
            make_renditions.apply_async(
                (str(image.id), [{"name": spec.name, "width": width, "height": height, "mode": mode}]),
                queue=settings.SQS_EXTRAS_QUEUE_NAME,  # never in front of anyone's new upload
            )
        except Exception as exc:
            raise Unavailable.queue() from exc
        quotas.note_extra_size(image, spec.name)
    return spec.name, None


def custom_name(width: int, height: int, mode: str) -> str:
    return f"{width}x{height}-{mode}"


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

    1. Refuse (Conflict) unless the image failed in a way a retry can cure.
    2. Back to pending, and queue the resize task once that is committed;
       the analysis too when it has no result (it failed, or its message was
       lost with the resize's), on its own queue.
    3. If the queue cannot be reached, put the failure back and report it
       Unavailable: the image never sits "pending" with no message behind it.
    """
    if image.status != Image.Status.FAILED:
        raise Conflict("not_failed", "Only a failed image can be retried.")
    if not can_retry(image):
        raise Conflict(
            "not_retryable", f"{image.failure_reason or image.failure_code} Trying again would fail the same way."
        )
    from thumbnails.analysis import enqueue as enqueue_analysis
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
                if not Analysis.objects.filter(image=image, status=Analysis.Status.DONE).exists():
                    transaction.on_commit(partial(enqueue_analysis, str(image.id)))
    except Exception as exc:
        log.warning("queue unavailable for retry of %s: %s", image.id, exc)
        Image.objects.filter(pk=image.pk, status=Image.Status.PENDING).update(**failed, updated_at=timezone.now())
        raise Unavailable.queue() from exc
    image.refresh_from_db()
    return image
