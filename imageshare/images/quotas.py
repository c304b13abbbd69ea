"""What one account may take: storage bytes, and extra sizes per image and in flight.

Belongs here: the amplification bounds that keep one account from filling
storage or the workers' time for everyone else. The counts of extra sizes
still being made live in the shared cache (the workers never touch it): each
request prunes the names that have since been stored, and an entry expires
after ``PENDING_TTL`` whatever happens to its message.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum

from thumbnails.analysis import ANNOTATED
from thumbnails.engine import STANDARD_SPECS

from .errors import BadInput, RateLimited, TooLarge
from .models import Image, Rendition

PENDING_TTL = 15 * 60  # longer than a queued size can reasonably wait


def storage_used(owner: Any) -> int:
    """Bytes an account stores: originals plus every rendition."""
    originals = Image.objects.filter(owner=owner).aggregate(n=Sum("byte_size"))["n"] or 0
    renditions = Rendition.objects.filter(image__owner=owner).aggregate(n=Sum("byte_size"))["n"] or 0
    return int(originals + renditions)


def usage(owner: Any) -> dict[str, int | None]:
    quota = settings.USER_STORAGE_QUOTA_BYTES
    return {"used_bytes": storage_used(owner), "quota_bytes": quota or None}


def check_storage(owner: Any, adding: int) -> None:
    """Refuse an upload that would take an account past its quota (anonymous uploads have none)."""
    quota = settings.USER_STORAGE_QUOTA_BYTES
    if not quota or owner is None or not owner.is_authenticated:
        return
    used = storage_used(owner)
    if used + adding > quota:
        raise TooLarge(
            "quota_exceeded",
            f"This account stores {used} bytes of its {quota}; this upload needs {adding} more. Delete some images.",
        )


def _pending(image: Image) -> tuple[str, dict[str, float]]:
    """The owner's queued extra sizes ("<image id>/<name>" -> when), without the stored or expired ones."""
    key = f"extra-sizes-pending:{image.owner_id}"
    now = time.time()
    pending = {k: at for k, at in (cache.get(key) or {}).items() if now - at < PENDING_TTL}
    if pending:
        ids = {k.split("/", 1)[0] for k in pending}
        stored = Rendition.objects.filter(image_id__in=ids).values_list("image_id", "name")
        done = {f"{image_id}/{name}" for image_id, name in stored}
        pending = {k: at for k, at in pending.items() if k not in done}
    return key, pending


def check_extra_size(image: Image, name: str, width: int, height: int) -> None:
    """Refuse an extra size past the allow-list, the per-image cap or the owner's in-flight cap.

    1. The allow-list (``CUSTOM_SIZES_ALLOWED``), when one is set (400).
    2. Per image: stored plus queued extra sizes stay within
       ``MAX_CUSTOM_SIZES_PER_IMAGE`` (429, nothing queued).
    3. Per owner: extra sizes queued and not yet stored stay within
       ``MAX_CUSTOM_SIZES_IN_FLIGHT``, so one account's flood cannot hold the
       workers (429 with Retry-After: ask again when some are done).
    """
    allowed = settings.CUSTOM_SIZES_ALLOWED
    if allowed and f"{width}x{height}" not in allowed:
        raise BadInput("size_not_allowed", f"The sizes on this site are {', '.join(sorted(allowed))}.")
    # Not extra sizes: the standard set, and the faces' annotated copy (thumbnails/analysis.py).
    not_extra = {spec.name for spec in STANDARD_SPECS} | {ANNOTATED}
    stored = image.renditions.exclude(name__in=not_extra).exclude(name__contains=".").values_list("name", flat=True)
    _, pending = _pending(image)
    queued = {k.split("/", 1)[1] for k in pending if k.startswith(f"{image.id}/")}
    if len(set(stored) | queued | {name}) > settings.MAX_CUSTOM_SIZES_PER_IMAGE:
        raise RateLimited(
            "too_many_sizes",
            f"An image may have {settings.MAX_CUSTOM_SIZES_PER_IMAGE} extra sizes; this one has them all.",
        )
    if len(pending) >= settings.MAX_CUSTOM_SIZES_IN_FLIGHT:
        raise RateLimited(
            "too_many_in_flight",
            f"{len(pending)} extra sizes of yours are still being made; ask again when some are ready.",
            retry_after=5,
        )


def note_extra_size(image: Image, name: str) -> None:
    """Remember a queued extra size (for the caps above) until it is stored or expires."""
    key, pending = _pending(image)
    pending[f"{image.id}/{name}"] = time.time()
    cache.set(key, pending, PENDING_TTL)
