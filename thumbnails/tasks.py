"""The resize task: thin I/O around the pure engine.

Idempotent: keys are fixed per image and size, rows are upserted, and an image
already ready is left alone, so a message SQS delivers twice does no harm.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError
from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_received
from django.conf import settings
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


# The fields a re-run overwrites on an existing rendition row (created_at is auto_now).
RENDITION_FIELDS = ["format", "key", "content_type", "width", "height", "byte_size", "created_at"]

# Renditions are put concurrently, a few at a time: S3 latency, not CPU, is
# what a put costs, and the one boto3 client is thread-safe.
PUT_THREADS = 4
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child builds its own

# Request key carrying the wall-clock time the worker's main process received the message.
RECEIVED_KEY = "imageshare_received"


@task_received.connect
def _stamp_received(request: Any = None, **_: Any) -> None:
    """In the worker's main process, as the message arrives: note when, for the task's ``receive`` stage."""
    if request is not None and request.name == "thumbnails.tasks.make_renditions":
        request.request_dict[RECEIVED_KEY] = time.time()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def fetch_original(s3: Any, key: str) -> bytes | None:
    """The original's bytes: one GetObject, its body read once into memory (the engine decodes from
    bytes); None when the object is gone. Transient errors raise TransientStorageError."""
    try:
        with _storage_errors():
            return s3.get_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)["Body"].read()
    except ClientError as exc:
        if _error_code(exc) not in ("NoSuchKey", "404"):
            raise
        return None


def _put_pool() -> ThreadPoolExecutor:
    global _pool
    pid = os.getpid()
    with _pool_lock:
        if _pool is None or _pool[0] != pid:
            _pool = (pid, ThreadPoolExecutor(PUT_THREADS, thread_name_prefix="rendition-put"))
        return _pool[1]


def put_all(s3: Any, objects: list[tuple[str, bytes, str]]) -> None:
    """PutObject every (key, bytes, content type) at once, with the storage's parameters (ACL) and a
    rendition's Cache-Control (``links.rendition_cache_control``: a year, immutable, in open mode,
    whose rendition URLs are versioned; the settings' value in private mode).

    Waits for all of them; the first failure is raised (transient ones as
    TransientStorageError) after the others have finished.
    """
    from imageshare.images.links import rendition_cache_control
    from imageshare.images.storage import write_parameters

    cache_control = rendition_cache_control()

    def put(key: str, body: bytes, content_type: str) -> None:
        params = {**write_parameters(key, content_type), "CacheControl": cache_control}
        s3.put_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key, Body=body, **params)

    if len(objects) == 1:
        with _storage_errors():
            put(*objects[0])
        return
    futures = [_put_pool().submit(put, *o) for o in objects]
    wait(futures)
    for f in futures:
        with _storage_errors():
            f.result()


class ImageTask(DjangoTask):
    """A task whose first argument is an image id; out of retries, or on an unexpected error,
    ``record_failure`` says so on that image, so no one waits on it for ever."""

    def record_failure(self, image_id: str, exc: BaseException) -> None:
        raise NotImplementedError

    def on_failure(
        self, exc: BaseException, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], einfo: Any
    ) -> None:
        image_id = args[0] if args else kwargs.get("image_id")
        if image_id:
            try:
                self.record_failure(image_id, exc)
            except Exception:  # the database may be what failed; the log keeps the error
                log.exception("could not record the failure of %s for image %s", self.name, image_id)


class ResizeTask(ImageTask):
    def record_failure(self, image_id: str, exc: BaseException) -> None:
        """The user sees 'failed', never 'pending' forever."""
        _mark_failed(image_id, "processing_error", f"Processing failed: {type(exc).__name__}")


# Every worker task: acknowledged after the work (a dead worker's message comes
# back), retried only on the named transient errors, with backoff and jitter.
DELIVERY_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(bind=True, base=ResizeTask, name="thumbnails.tasks.make_renditions", **DELIVERY_OPTIONS)
def make_renditions(self: ResizeTask, image_id: str, specs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Render the standard set (or ``specs``) of one image and store it.

    1. Load the row; stop if it is gone (deleted) or already ready. Count the
       attempt (its own write, committed before the work: a worker killed
       mid-task never reaches the end, and ``console/stranded.py`` stops
       re-dispatching an image after SQS_MAX_RECEIVE_COUNT attempts).
    2. Fetch the original from S3: one GetObject, its body read once into
       memory (the engine decodes from bytes).
    3. Run the engine (pure: bytes in, encoded renditions out).
    4. Put the renditions to their fixed keys, concurrently (PutObject, no
       HEAD first: keys are fixed and overwritten).
    5. One transaction: mark the image ready (an UPDATE, which takes the row
       lock a delete also takes) and upsert every rendition row in one
       INSERT ... ON CONFLICT. If the row is gone (deleted meanwhile), remove
       the objects written and stop.

    Logs one ``stages {json}`` line per finished image: milliseconds per
    stage (bench/pipeline.py reads it; docs/pipeline.md).
    """
    from imageshare.images.models import Image, Rendition
    from imageshare.images.storage import rendition_key, s3_client

    started, cpu_started = time.perf_counter(), time.process_time()
    stages: dict[str, Any] = {"image": image_id}
    received = self.request.get(RECEIVED_KEY)
    if received:  # set by the worker's main process (on_task_received): waiting there for a pool slot
        stages["receive"] = round((time.time() - received) * 1000, 1)
    image = Image.objects.filter(pk=image_id).only("id", "status", "original_key").first()
    if image is None:
        log.info("image %s is gone; nothing to do", image_id)
        return {"image": image_id, "skipped": "missing"}
    if specs is None and image.status == Image.Status.READY:
        return {"image": image_id, "skipped": "ready"}
    Image.objects.filter(pk=image_id).update(attempts=F("attempts") + 1)
    stages["db_start"] = _ms(started)

    t = time.perf_counter()
    s3 = s3_client()
    data = fetch_original(s3, image.original_key)
    if data is None:
        # Nothing a retry can cure (moto restarted, the bucket emptied by hand): say so plainly.
        _mark_failed(image_id, "original_missing", "The original file is gone from storage; upload it again.")
        return {"image": image_id, "failed": "original_missing"}
    stages["get"] = _ms(t)

    spec_objs = [engine.Spec(**s) for s in specs] if specs else engine.STANDARD_SPECS
    t, cpu = time.perf_counter(), time.process_time()
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
    del data
    stages["engine"] = _ms(t)
    stages["engine_cpu"] = round((time.process_time() - cpu) * 1000, 1)
    stages["decode"] = round(result.timings["decode"] + result.timings["normalise"], 1)
    stages["resize_encode"] = round(result.timings["total"] - stages["decode"], 1)

    main_format = result.renditions[0].format
    rows = []
    for r in result.renditions:
        main = r.format == main_format
        key = rendition_key(image.id, r.name, r.extension, main=main)
        rows.append(
            Rendition(
                image_id=image.id,
                name=r.name if main else f"{r.name}.{r.extension}",
                format=r.format,
                key=key,
                content_type=r.content_type,
                width=r.width,
                height=r.height,
                byte_size=len(r.data),
            )
        )
    t = time.perf_counter()
    put_all(s3, [(row.key, r.data, r.content_type) for row, r in zip(rows, result.renditions, strict=True)])
    stages["puts"] = _ms(t)

    t = time.perf_counter()
    with transaction.atomic():
        # The UPDATE takes the row lock the delete takes (select_for_update in
        # effect), so this is ordered against a user's delete, whose own second
        # sweep catches what we wrote before it. Deleted while we rendered?
        # Then nothing may stay behind: remove what we wrote.
        found = Image.objects.filter(pk=image_id).update(
            status=Image.Status.READY,
            failure_code="",
            failure_reason="",
            ready_at=timezone.now(),
            processing_ms=round((time.perf_counter() - started) * 1000),
        )
        if not found:
            with _storage_errors():
                s3.delete_objects(
                    Bucket=settings.AWS_STORAGE_BUCKET_NAME,
                    Delete={"Objects": [{"Key": row.key} for row in rows], "Quiet": True},
                )
            log.info("image %s was deleted while its renditions were made; removed them", image_id)
            return {"image": image_id, "skipped": "deleted"}
        Rendition.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["image", "name"],
            update_fields=RENDITION_FIELDS,
        )
    stages["db"] = _ms(t)
    stages["task"] = _ms(started)
    stages["task_cpu"] = round((time.process_time() - cpu_started) * 1000, 1)  # this process, all its threads
    stages["done_at"] = round(time.time(), 3)
    log.info("stages %s", json.dumps(stages, separators=(",", ":")))
    return {"image": image_id, "ms": round(result.timings["total"], 1)}
