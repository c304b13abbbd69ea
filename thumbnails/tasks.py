"""The resize task: thin I/O around the pure engine.

Idempotent: keys are fixed per image and size, rows are upserted, and an image
already ready is left alone, so a message SQS delivers twice does no harm.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from thumbnails import engine

log = logging.getLogger(__name__)


class TransientStorageError(Exception):
    """S3 answered an error that a later attempt can cure (5xx, throttling), after botocore's own retries."""


# S3's error codes for "not now": server errors and throttling.
TRANSIENT_S3_CODES = frozenset(
    {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}
)

# Only errors that a retry can cure. A bad image, a missing row or a bug is
# not retried: it fails at once with a reason the user sees.
TRANSIENT_ERRORS = (
    EndpointConnectionError,
    BotoConnectionError,
    ConnectionClosedError,  # a connection reset mid-response
    ReadTimeoutError,
    ConnectionError,
    TimeoutError,
    OperationalError,
    TransientStorageError,
)


@contextlib.contextmanager
def _storage_errors() -> Iterator[None]:
    """S3 calls: a transient ClientError becomes TransientStorageError (retried with backoff)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in TRANSIENT_S3_CODES or status in TRANSIENT_S3_CODES:
            raise TransientStorageError(f"S3 {code or status}: {exc}") from exc
        raise


def _mark_failed(image_id: str, code: str, reason: str) -> None:
    from imageshare.images.models import Image

    Image.objects.filter(pk=image_id).exclude(status=Image.Status.READY).update(
        status=Image.Status.FAILED, failure_code=code, failure_reason=reason[:1000], updated_at=timezone.now()
    )


class ResizeTask(DjangoTask):
    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        """Out of retries, or an unexpected error: the user sees 'failed', never 'pending' forever."""
        image_id = args[0] if args else kwargs.get("image_id")
        if image_id:
            try:
                _mark_failed(image_id, "processing_error", f"Processing failed: {type(exc).__name__}")
            except Exception:  # the database may be what failed; the log keeps the error
                log.exception("could not mark image %s failed", image_id)


@shared_task(
    bind=True,
    base=ResizeTask,
    name="thumbnails.tasks.make_renditions",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def make_renditions(self: ResizeTask, image_id: str, specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Render the standard set (or ``specs``) of one image and store it.

    1. Load the row; stop if it is gone (deleted) or already ready.
    2. Fetch the original from S3.
    3. Run the engine (pure: bytes in, encoded renditions out).
    4. Put each rendition to its fixed key.
    5. If the image was deleted meanwhile, remove those objects and stop;
       else upsert the renditions' rows and mark the image ready.
    """
    from imageshare.images.models import Image, Rendition
    from imageshare.images.storage import rendition_key

    started = time.perf_counter()
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        log.info("image %s is gone; nothing to do", image_id)
        return {"image": image_id, "skipped": "missing"}
    if specs is None and image.status == Image.Status.READY:
        return {"image": image_id, "skipped": "ready"}
    Image.objects.filter(pk=image_id).update(attempts=F("attempts") + 1)

    try:
        with _storage_errors(), default_storage.open(image.original_key, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        # Nothing a retry can cure (moto restarted, the bucket emptied by hand): say so plainly.
        _mark_failed(image_id, "original_missing", "The original file is gone from storage; upload it again.")
        return {"image": image_id, "failed": "original_missing"}
    spec_objs = [engine.Spec(**s) for s in specs] if specs else engine.STANDARD_SPECS
    try:
        result = engine.render(
            data,
            spec_objs,
            max_pixels=settings.MAX_IMAGE_PIXELS,
            jpeg_quality=settings.JPEG_QUALITY,
            extra_formats=settings.EXTRA_FORMATS,
        )
    except engine.EngineError as exc:
        _mark_failed(image_id, exc.code, exc.message)
        return {"image": image_id, "failed": exc.code}
    except SoftTimeLimitExceeded:
        _mark_failed(image_id, "timeout", f"Processing took longer than {settings.TASK_TIME_LIMIT}s.")
        return {"image": image_id, "failed": "timeout"}

    main_format = result.renditions[0].format
    rows = []
    for r in result.renditions:
        main = r.format == main_format
        key = rendition_key(image.id, r.name, r.extension, main=main)
        blob = ContentFile(r.data)
        blob.content_type = r.content_type
        with _storage_errors():
            default_storage.save(key, blob)
        rows.append((r.name if main else f"{r.name}.{r.extension}", key, r))

    with transaction.atomic():
        # Deleted while we rendered? Then nothing may stay behind: remove what
        # we wrote. The row lock orders this against the delete (whose own
        # second sweep catches what we wrote before it).
        if not Image.objects.select_for_update().filter(pk=image_id).exists():
            for _, key, _ in rows:
                default_storage.delete(key)
            log.info("image %s was deleted while its renditions were made; removed them", image_id)
            return {"image": image_id, "skipped": "deleted"}
        for name, key, r in rows:
            Rendition.objects.update_or_create(
                image=image,
                name=name,
                defaults={
                    "format": r.format,
                    "key": key,
                    "content_type": r.content_type,
                    "width": r.width,
                    "height": r.height,
                    "byte_size": len(r.data),
                },
            )
        Image.objects.filter(pk=image_id).update(
            status=Image.Status.READY,
            failure_code="",
            failure_reason="",
            ready_at=timezone.now(),
            processing_ms=round((time.perf_counter() - started) * 1000),
        )
    log.info("image %s ready in %.0f ms (%s)", image_id, result.timings["total"], result.timings)
    return {"image": image_id, "ms": round(result.timings["total"], 1)}
