"""The one way in for a new image: every upload door calls ``accept_upload``.

The doors: the browser form (``POST /`` from a page), the JSON API
(``POST /api/v1/images``, a multipart file or a JSON ``url``), and the seed
endpoints (``POST /`` for JSON clients, ``POST /api/upload``). Each door only
picks the file (or URL) out of its request and renders the outcome; the
rules (limits, validation, storing, queueing, undoing) are here, once.
The direct upload's finalize (``direct``), whose file is in S3 already,
uses the same pieces: ``validate_image``, ``prepare`` and ``store_original``.

Belongs here: the upload limits and checks, reading the bytes, storing the
original and queueing its renditions. Refusals are ``errors`` kinds; the
door turns them into its HTTP shape (``http_errors``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeAlias

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from thumbnails import engine

from . import metadata, quotas, remote
from .errors import BadInput, Conflict, Overloaded, TooLarge, Unavailable, from_engine
from .models import Image
from .storage import STORAGE_ERRORS, original_key

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

log = logging.getLogger(__name__)

# The limits. The byte limit itself is the MAX_UPLOAD_BYTES setting (read at
# call time, so tests and deployments can change it); a multipart body is a
# little larger than the file it carries, by this much at most:
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the other form fields

MISSING_IMAGE = "No image was sent: use the multipart field 'image'."


@dataclass(frozen=True)
class RemoteURL:
    """An image to fetch from a public http(s) URL (the API's ``{"url": ...}``)."""

    url: str


# What a door hands over: an uploaded file (Django's UploadedFile) or a URL.
Source: TypeAlias = UploadedFile | RemoteURL


def accept_upload(
    owner: AbstractBaseUser | AnonymousUser | None,
    source: Source | Callable[[], Source | None] | None,
    *,
    declared_length: str | int | None,
    files_in_request: int = 1,
    missing_message: str = MISSING_IMAGE,
) -> Image:
    """Turn one upload from any door into a stored original and a queued resize job.

    1. Refuse an over-limit declared Content-Length (``declared_length``, for
       a request carrying ``files_in_request`` files) before the body is
       read. So a door whose body is not parsed yet passes ``source`` as a
       callable: the body is parsed when it is called, after this check.
    2. No source: ``missing_image``, with the door's ``missing_message``
       (it names the door's field).
    3. Read the bytes: a file's size is checked before it is read into
       memory; a URL is fetched by ``remote.fetch``, which stops at the limit.
    4. Validate, store and queue (``_store``).
    """
    check_declared_length(declared_length, files_in_request)
    check_backlog()
    picked = source() if callable(source) else source
    if picked is None:
        raise BadInput("missing_image", missing_message)
    if isinstance(picked, RemoteURL):
        data, name = remote.fetch(picked.url)
    else:
        data, name = _read_file(picked), picked.name or ""
    return _store(owner, data, name)


def check_declared_length(declared_length: str | int | None, files_in_request: int = 1) -> None:
    """Refuse an over-limit body from its Content-Length, before reading it.

    The limit is per file: a browser form may carry several photos, each
    within MAX_UPLOAD_BYTES. An unreadable length is left to the size checks.
    """
    try:
        declared = int(declared_length or 0)
    except ValueError:
        declared = 0
    if declared > files_in_request * settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD:
        raise TooLarge("too_large", f"The upload is larger than the limit of {settings.MAX_UPLOAD_BYTES} bytes.")


# The work queue's depth, read at most once per BACKLOG_READ_SECONDS per process:
# one SQS call per upload would cost more than the upload's own enqueue.
BACKLOG_READ_SECONDS = 2.0
_backlog: dict[str, float] = {"visible": 0.0, "read_at": float("-inf")}


def check_backlog() -> None:
    """Refuse new work (503 + Retry-After) while the queue holds more than UPLOAD_BACKLOG_LIMIT messages.

    Overload protection that follows what the workers can drain, instead of a
    fixed per-user rate: nothing is stored, the client retries later. When
    the depth cannot be read, uploads go on (enqueueing has its own undo).
    """
    now = time.monotonic()
    if now - _backlog["read_at"] > BACKLOG_READ_SECONDS:
        from imageshare.console.queues import queue_depth

        try:
            _backlog["visible"] = queue_depth()["work"]["visible"]
        except Exception as exc:  # an unreadable depth must not refuse uploads
            log.warning("queue depth unreadable for the backlog check: %s", exc)
            _backlog["visible"] = 0
        _backlog["read_at"] = now
    if _backlog["visible"] > settings.UPLOAD_BACKLOG_LIMIT:
        raise Overloaded(
            "overloaded",
            f"{int(_backlog['visible'])} images are waiting to be processed; try again shortly.",
            retry_after=settings.UPLOAD_BACKLOG_RETRY_AFTER,
        )


def check_size(size: int | None) -> None:
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        raise TooLarge("too_large", f"The file is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES} bytes.")


def validate_image(head: bytes, size: int) -> engine.Probe:
    """The one validation of every door: the size, then the decoded header (format, pixel count).

    ``head`` is the file, or its first bytes (the header is all the probe
    reads); ``size`` is the whole file's length. The multipart doors pass
    the bytes they read, the direct upload's finalize the start of the
    object in S3 and its stored length.
    """
    check_size(size)
    if not size or not head:
        raise BadInput("empty_file", "The file is empty.")
    try:
        return engine.probe(head, max_pixels=settings.MAX_IMAGE_PIXELS)
    except engine.EngineError as exc:
        raise from_engine(exc) from exc


def validate_bytes(data: bytes) -> engine.Probe:
    """Check a whole file's size, then its decoded header (format, pixel count)."""
    return validate_image(data, len(data))


@dataclass(frozen=True)
class Prepared:
    """A validated original, ready to store: its bytes (scrubbed when asked) and what the probe read."""

    data: bytes
    probe: engine.Probe
    scrubbed: bool  # the bytes differ from what was uploaded (personal metadata went)


def prepare(owner: AbstractBaseUser | AnonymousUser | None, data: bytes) -> Prepared:
    """Validate (size, format, pixels), check the owner's quota, strip personal metadata when asked."""
    probe = validate_bytes(data)
    quotas.check_storage(owner, len(data))
    kept = data
    if settings.STRIP_ORIGINAL_METADATA:
        kept = metadata.scrub(data, probe.mime)
    return Prepared(kept, probe, kept is not data and kept != data)


def _read_file(uploaded: UploadedFile) -> bytes:
    check_size(uploaded.size)  # before reading it into memory
    uploaded.seek(0)
    data: bytes = uploaded.read()
    return data


def _store(owner: AbstractBaseUser | AnonymousUser | None, data: bytes, name: str) -> Image:
    """Validate, store and queue the bytes a door read (``prepare``, then ``store_original``)."""
    prepared = prepare(owner, data)
    return store_original(owner, prepared.probe, name, len(prepared.data), put=_put_bytes(prepared))


# How the original reaches originals/<id>: the bytes a door read are saved;
# a direct upload's object already in S3 may be copied there (``direct``).
PutOriginal: TypeAlias = Callable[[str], None]


def _put_bytes(prepared: Prepared) -> PutOriginal:
    def put(key: str) -> None:
        blob = ContentFile(prepared.data)
        blob.content_type = prepared.probe.mime
        default_storage.save(key, blob)

    return put


def store_original(
    owner: AbstractBaseUser | AnonymousUser | None,
    probe: engine.Probe,
    name: str,
    byte_size: int,
    *,
    put: PutOriginal,
    image_id: uuid.UUID | None = None,
) -> Image:
    """Store a validated original and queue its renditions.

    1. Put the original in S3 under the image's id (``put``; a fresh id
       unless the caller brings one: the direct upload's id).
    2. Record the image and queue the resize task once the row is committed,
       so a worker never looks for a row that is not there yet.
    3. Undo only what this call made. The id taken by a committed row (a
       second finalize of one direct upload, the caller's id): that image
       and its original are left alone, and IntegrityError tells the caller
       to answer it. The owner gone meanwhile (the row's foreign key refused
       at commit): the original is removed, 409 ``account_gone``. The queue
       (or the database) unreachable: the row this call inserted and the
       original are removed, Unavailable (503): the user is told to retry,
       and nothing is left half-stored.
    """
    from thumbnails.analysis import enqueue as enqueue_analysis
    from thumbnails.tasks import make_renditions

    image = Image(
        owner=owner if owner is not None and owner.is_authenticated else None,
        original_name=name[:255],
        content_type=probe.mime,
        width=probe.width,
        height=probe.height,
        byte_size=byte_size,
    )
    if image_id is not None:
        image.id = image_id
    image.original_key = original_key(image.id)
    try:
        put(image.original_key)
    except STORAGE_ERRORS as exc:
        log.warning("storage unavailable for upload %s: %s", image.id, exc)
        raise Unavailable.storage() from exc
    inserted = False  # this call's INSERT went through (the row, if there is one, is this call's)
    try:
        with transaction.atomic():
            image.enqueued_at = timezone.now()
            image.save(force_insert=True)
            inserted = True
            make_renditions.delay_on_commit(str(image.id))
            # Faces and masks, on the analysis queue; its failure to queue only logs.
            transaction.on_commit(partial(enqueue_analysis, str(image.id)))
    except Exception as exc:
        if not inserted and Image.objects.filter(pk=image.pk).exists():
            # The id is another call's committed image (a second finalize of one direct upload, whose
            # put wrote the same validated bytes): leave it and its original; the caller answers it.
            if isinstance(exc, IntegrityError):
                raise
            raise IntegrityError(f"image {image.id} exists already") from exc
        _remove_original(image.original_key)
        if isinstance(exc, IntegrityError):
            log.warning("upload %s refused by the database: %s", image.id, exc)
            if image.owner_id is not None and not get_user_model().objects.filter(pk=image.owner_id).exists():
                # The row's foreign key refused at commit: the owner was deleted meanwhile.
                raise Conflict(
                    "account_gone", "This account was deleted during the upload; nothing was stored."
                ) from exc
            raise  # nothing this call made is left; the error is the server's (500)
        # The commit happened before the callback ran (or failed itself): undo the row too.
        log.warning("queue unavailable for upload %s: %s", image.id, exc)
        if inserted:
            Image.objects.filter(pk=image.pk).delete()
        raise Unavailable.queue() from exc
    return image


def _remove_original(key: str) -> None:
    try:
        default_storage.delete(key)
    except STORAGE_ERRORS:
        log.exception("could not remove original %s", key)
