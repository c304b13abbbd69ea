"""Objects in S3 whose image row is gone are removed: what a delete left behind, nothing else.

A delete removes the objects, then the row, then sweeps again, and a worker
that finds the row gone removes what it wrote (commands.delete_image,
thumbnails.tasks). This periodic sweep is the safety net under both: a crash
between the steps, or storage down during the second sweep. It only touches
objects older than ``ORPHAN_SWEEP_AFTER_SECONDS``, because an upload stores
its original a moment before its row exists.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from .models import Image

PREFIXES = ("originals/", "renditions/")


def _image_id(key: str) -> str | None:
    """The image id in ``originals/<id>`` or ``renditions/<id>/<name>``; None for anything else."""
    parts = key.split("/")
    try:
        return str(uuid.UUID(parts[1])) if len(parts) >= 2 else None
    except ValueError:
        return None


def sweep_orphans(max_keys: int = 5000) -> int:
    """1. List up to ``max_keys`` objects under the image prefixes. 2. Keep those old enough whose
    image row does not exist. 3. Delete them in batches. Returns how many went."""
    client = default_storage.connection.meta.client
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    cutoff = timezone.now() - timedelta(seconds=settings.ORPHAN_SWEEP_AFTER_SECONDS)
    candidates: dict[str, list[str]] = {}
    seen = 0
    for prefix in PREFIXES:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                seen += 1
                image_id = _image_id(obj["Key"])
                if image_id and obj["LastModified"] < cutoff:
                    candidates.setdefault(image_id, []).append(obj["Key"])
            if seen >= max_keys:
                break
    existing = {str(i) for i in Image.objects.filter(pk__in=list(candidates)).values_list("id", flat=True)}
    doomed = [key for image_id, keys in candidates.items() if image_id not in existing for key in keys]
    for start in range(0, len(doomed), 1000):
        batch = [{"Key": key} for key in doomed[start : start + 1000]]
        client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    return len(doomed)
