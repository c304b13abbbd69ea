"""Direct uploads: the client sends the file straight to S3, then asks for the image.

The web tier hands out a presigned S3 POST (``presign``) and, once the file
is in the bucket, makes the image from it (``finalize``); the bytes never
pass through a web process on the way in. docs/uploads.md is the client's
guide.

1. ``presign``: a presigned POST for one fresh key, ``incoming/<owner>/<upload
   id>`` (the owner's user id, or ``anonymous`` in open mode; the upload id a
   random UUID), bounded by the policy's conditions: the key itself, a
   length of 1..MAX_UPLOAD_BYTES, an image Content-Type; it expires after
   DIRECT_UPLOAD_EXPIRES_SECONDS.
2. ``finalize``: the upload id becomes the image's id. S3 (real S3, not moto)
   enforces the policy, but nothing here trusts that: the object's length,
   format and pixels go through the same ``uploads.validate_image`` as the
   multipart doors, then the quota, the backlog, the metadata scrub, and
   ``uploads.store_original`` (original to ``originals/<id>``, row, resize
   task after commit, undo when the queue is down). A refused object is
   deleted; a stored one too, once copied.

Ownership needs no record: the caller's identity is part of the key, so
another account's upload id names a key that does not exist (404, the
same answer as an id never uploaded: ids leak nothing). A second finalize
of one upload answers the image the first made (200): idempotent.

Belongs here: the presign policy and the finalize steps. The limits and the
validation are ``uploads``'s; the HTTP shapes the API's (``api``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from . import quotas
from .errors import BadInput, Conflict, ImageshareError, NotFound, Unavailable, UnsupportedType
from .models import Image
from .storage import STORAGE_ERRORS, s3_client, write_parameters
from .uploads import Prepared, check_backlog, check_size, prepare, store_original, validate_image

log = logging.getLogger(__name__)

INCOMING_PREFIX = "incoming/"
# Content types a presign may name exactly; without one, any "image/..." is allowed by the policy
# (the format is decided at finalize by the probe, whatever the type said).
ALLOWED_CONTENT_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/tiff", "image/bmp")
# The start of the object the probe reads when the bytes themselves are not needed (no metadata scrub):
# headers are a few KB; EXIF, ICC profiles and thumbnails before the pixels stay well under this.
PROBE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Presigned:
    upload_id: uuid.UUID
    key: str
    url: str
    fields: dict[str, str]
    expires_at: dt.datetime


def _bucket() -> str:
    return settings.AWS_STORAGE_BUCKET_NAME


def owner_segment(owner: Any) -> str:
    return str(owner.pk) if owner is not None and owner.is_authenticated else "anonymous"


def incoming_key(owner: Any, upload_id: uuid.UUID) -> str:
    return f"{INCOMING_PREFIX}{owner_segment(owner)}/{upload_id}"


def presign(owner: Any, *, content_type: str | None = None, size: int | None = None) -> Presigned:
    """A presigned POST for a new upload of ``owner``'s (after the backlog and, when sent, size checks)."""
    if size is not None:
        check_size(size)
        quotas.check_storage(owner, size)
    if content_type is not None and content_type not in ALLOWED_CONTENT_TYPES:
        raise BadInput("unsupported_content_type", f"content_type must be one of {', '.join(ALLOWED_CONTENT_TYPES)}.")
    check_backlog()
    upload_id = uuid.uuid4()
    key = incoming_key(owner, upload_id)
    fields: dict[str, str] = {}
    conditions: list[Any] = [["content-length-range", 1, settings.MAX_UPLOAD_BYTES]]
    if content_type:
        fields["Content-Type"] = content_type
        conditions.append({"Content-Type": content_type})
    else:
        conditions.append(["starts-with", "$Content-Type", "image/"])
    expires = settings.DIRECT_UPLOAD_EXPIRES_SECONDS
    try:
        post = s3_client().generate_presigned_post(
            Bucket=_bucket(), Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires
        )
    except STORAGE_ERRORS as exc:
        log.warning("cannot presign a direct upload: %s", exc)
        raise Unavailable.storage() from exc
    return Presigned(upload_id, key, post["url"], post["fields"], timezone.now() + dt.timedelta(seconds=expires))


def parse_upload_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise _no_such_upload() from None


def _no_such_upload() -> NotFound:
    return NotFound(
        "no_such_upload",
        "Nothing was uploaded under this id by you: POST the file to the presigned url first "
        "(before it expires), then finalize with the same account.",
    )


def _same_owner(image: Image, owner: Any) -> bool:
    if owner is not None and owner.is_authenticated:
        return image.owner_id == owner.pk
    return image.owner_id is None


def finalize(owner: Any, upload_id: uuid.UUID, name: str = "") -> tuple[Image, bool]:
    """Make the image from upload ``upload_id`` of ``owner``'s; (image, created).

    1. Already made (a second finalize): that image, created False; another
       owner's image answers as nothing uploaded.
    2. The backlog check (503 + Retry-After; the object stays, so the client
       may finalize again later).
    3. The object's start and length (one ranged GET): none there,
       ``no_such_upload`` (unless a concurrent finalize of the same upload
       made the image and removed the object meanwhile: that image).
    4. Validate and store (``_make``); a refusal deletes the object. Any
       refusal (the object gone before the copy, say) answers the image a
       concurrent finalize of the same upload made meanwhile, if there is one.
    5. Delete the incoming object (its copy is the original now).
    """
    done = Image.objects.filter(pk=upload_id).first()
    if done is not None:
        if not _same_owner(done, owner):
            raise _no_such_upload()
        return done, False
    check_backlog()
    key = incoming_key(owner, upload_id)
    # The scrub needs every byte: one GET of the whole object (bounded: one byte past the limit tells
    # an oversized one). Without it, the start is all the probe reads.
    try:
        read = _read(key, 0, settings.MAX_UPLOAD_BYTES + 1 if settings.STRIP_ORIGINAL_METADATA else PROBE_BYTES)
    except NotFound:
        done = _made_for(owner, upload_id)  # a concurrent finalize made it and removed the object meanwhile
        if done is None:
            raise
        return done, False
    try:
        image = _make(owner, upload_id, key, read, name)
    except IntegrityError:
        # Another finalize of the same upload committed first: answer its image.
        done = _made_for(owner, upload_id)
        if done is None:
            raise
        return done, False
    except ImageshareError as exc:
        if not isinstance(exc, Unavailable):
            _delete(key)  # refused for good: the object must not linger
        # A concurrent finalize of the same upload may have made the image meanwhile, e.g. removed
        # the object between this one's read and its copy (no_such_upload): answer that image.
        done = _made_for(owner, upload_id)
        if done is None:
            raise
        return done, False
    _delete(key)
    return image, True


def _made_for(owner: Any, upload_id: uuid.UUID) -> Image | None:
    done = Image.objects.filter(pk=upload_id).first()
    return done if done is not None and _same_owner(done, owner) else None


@dataclass(frozen=True)
class Read:
    """What one GET of the incoming object answered: its first bytes, its whole length, its ETag."""

    data: bytes
    size: int
    etag: str


def _read(key: str, start: int, count: int) -> Read:
    """``count`` bytes of the object from ``start`` (fewer at its end), the object's whole length and ETag.

    A ranged GET: the length comes from its Content-Range, so no HEAD is needed.
    The ETag names the version read: the copy to ``originals/`` is made only
    of that version (``_copy_from``), so the object validated is the object stored.
    """
    try:
        answer = s3_client().get_object(Bucket=_bucket(), Key=key, Range=f"bytes={start}-{start + count - 1}")
        data: bytes = answer["Body"].read(count + 1)[:count]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise _no_such_upload() from None
        if code == "InvalidRange" and start == 0:  # an empty object has no byte 0
            return Read(b"", 0, "")
        raise Unavailable.storage() from exc
    except STORAGE_ERRORS as exc:
        raise Unavailable.storage() from exc
    content_range = answer.get("ContentRange") or ""  # "bytes 0-262143/2251799"
    total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else int(answer["ContentLength"])
    return Read(data, total, answer.get("ETag") or "")


def _upload_changed() -> Conflict:
    return Conflict(
        "upload_changed",
        "The uploaded file changed while it was being finalized; it was removed. "
        "Start again: presign, upload the file once, then finalize.",
    )


def _make(owner: Any, upload_id: uuid.UUID, key: str, read: Read, name: str) -> Image:
    """Validate the object as the multipart doors validate a file, then store it as the original.

    ``read.data`` is the object's start (PROBE_BYTES at most; all of it, up
    to one byte past the limit, when the scrub is on), ``read.size`` its length.
    The size and the header (format, pixels) are checked first: an oversized
    object is refused without reading the rest; when the start does not
    show the header, the whole object is read and probed before refusing it
    (multipart accepts those files, so must this).
    With the metadata scrub on, the whole object is read (the scrub rewrites
    its bytes): ``uploads.prepare``, exactly the multipart path; the bytes in
    memory (scrubbed or not) are written as the original, never read again.
    Without it nothing more is read: the quota, and S3 copies the object, on
    condition that it is still the version read (its ETag); the bytes stay
    out of the web tier.
    """
    try:
        probe = validate_image(read.data, read.size)
    except (BadInput, UnsupportedType):
        if len(read.data) >= read.size:
            raise  # the whole file was there: refused for good
        # The header may lie past the start (a TIFF whose directory libtiff wrote at the end, a JPEG with a
        # large ICC profile before its frame header): probe the whole object (within the limit) before refusing.
        read = _read(key, 0, settings.MAX_UPLOAD_BYTES + 1)
        probe = validate_image(read.data, read.size)
    if settings.STRIP_ORIGINAL_METADATA:
        prepared = prepare(owner, read.data)  # the whole object: the size check above refused a longer one
        return store_original(owner, prepared.probe, name, len(prepared.data), put=_put(prepared), image_id=upload_id)
    quotas.check_storage(owner, read.size)
    put = _copy_from(key, probe.mime, read.etag)
    return store_original(owner, probe, name, read.size, put=put, image_id=upload_id)


def _copy_from(key: str, mime: str, etag: str) -> Callable[[str], None]:
    """Put the original by copying the incoming object inside S3 (with the type the probe found).

    Only the version finalize read and validated (``etag``): a presigned POST
    may be used again until it expires, so the object may have been replaced
    since. S3 refuses the copy then (``CopySourceIfMatch``: PreconditionFailed);
    moto ignores that condition, so the copy's own ETag is compared as well
    (an object sent by a POST is one part: its copy has the same ETag under
    no or SSE-S3 encryption, the bucket's). Either way the copy is removed
    and the finalize refused (``upload_changed``).
    """

    def put(original: str) -> None:
        source = {"Bucket": _bucket(), "Key": key}
        try:
            answer = s3_client().copy_object(
                Bucket=_bucket(),
                Key=original,
                CopySource=source,
                CopySourceIfMatch=etag,
                MetadataDirective="REPLACE",
                **write_parameters(original, mime),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412"):
                raise _upload_changed() from None
            if code in ("NoSuchKey", "404", "NotFound"):  # gone since the read: finalize looks for the image
                raise _no_such_upload() from None
            raise
        if answer.get("CopyObjectResult", {}).get("ETag") != etag:
            _delete(original)
            raise _upload_changed()

    return put


def _put(prepared: Prepared) -> Callable[[str], None]:
    """Put the original from the bytes finalize read, validated and scrubbed (the object is not read again)."""

    def put(original: str) -> None:
        s3_client().put_object(
            Bucket=_bucket(), Key=original, Body=prepared.data, **write_parameters(original, prepared.probe.mime)
        )

    return put


def _delete(key: str) -> None:
    try:
        s3_client().delete_object(Bucket=_bucket(), Key=key)
    except STORAGE_ERRORS as exc:  # the production bucket's lifecycle rule expires incoming/ anyway
        log.warning("could not delete incoming object %s: %s", key, exc)
