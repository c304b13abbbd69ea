"""Where a browser fetches an image's files: URL building.

Belongs here: the URL of each named file ("original", "small",
"400x400-fill", "small.webp"), known before the rendition exists because
keys are fixed (``storage``). Open mode hands out public (or CDN) URLs;
private mode hands out the app's own ``/i/<id>/<name>``, which checks
permission and redirects to a short-lived presigned URL.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse

from thumbnails import engine

from .access import is_open
from .models import Image
from .storage import rendition_key

STANDARD_NAMES = tuple(spec.name for spec in reversed(engine.STANDARD_SPECS))  # small, medium, large


def file_url(image: Image, name: str, request=None) -> str:
    """Where a browser gets ``name`` ("original", "small", "400x400-fill", ...).

    Open mode: the public object URL (or the CDN's). Private mode: the app's
    own URL, which checks permission and redirects to a short-lived presigned
    S3 URL.
    """
    key = _key_for(image, name)
    if is_open():
        base = f"{settings.CDN_BASE_URL}/{key}" if settings.CDN_BASE_URL else public_url(key)
        version = rendition_version(image, name)
        return f"{base}?v={version}" if version else base
    path = reverse("image-file", args=[image.id, name])
    return request.build_absolute_uri(path) if request is not None else path


# Open mode's renditions are cached for a year and never revalidated: their URLs
# carry a version that changes whenever the rendition is made again. Shared
# caches (the CDN) keep them a day only (s-maxage): a deleted or taken-down
# image leaves the CDN within a day without an invalidation per delete; browsers
# keep the year.
IMMUTABLE = "public, max-age=31536000, s-maxage=86400, immutable"


def rendition_cache_control() -> str:
    """The Cache-Control a rendition is stored with (the worker sets it on each put).

    Open mode: public URLs (S3 or the CDN) with ``?v=<version>`` (``file_url``),
    so a year and ``immutable``: a re-made rendition gets a new URL. Private
    mode: the settings' value for every object (URLs are short-lived presigned
    redirects, the bytes private).
    """
    if is_open():
        return IMMUTABLE
    return str(settings.AWS_S3_OBJECT_PARAMETERS.get("CacheControl", "private, max-age=86400"))


def rendition_version(image: Image, name: str) -> str | None:
    """A short version of a stored rendition: its ``created_at`` (auto_now: moves when re-made), base 36.

    None for the original (written once) and for a rendition not made yet.
    Reads ``image.renditions.all()``, which the pages and the API prefetch.
    """
    if name == "original":
        return None
    for rendition in image.renditions.all():
        if rendition.name == name and rendition.created_at is not None:
            return _base36(int(rendition.created_at.timestamp() * 1_000_000))
    return None


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


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
