"""An image as JSON: the one payload the API, the seed upload and the pages' templates share.

Belongs here: serialisation of models into plain dicts. No lookups, no
permission checks (the caller found the image through ``access``).
"""

from __future__ import annotations

from django.urls import reverse

from .commands import can_retry
from .links import file_url, image_urls
from .models import Image


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
