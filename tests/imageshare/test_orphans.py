"""The orphan sweep removes what a deleted image left in S3, and nothing that still has a row."""

import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from imageshare.images.orphans import sweep_orphans
from tests.support.images import make_image

pytestmark = pytest.mark.django_db


def keys(aws, prefix):
    return sorted(o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=prefix).get("Contents", []))


def test_it_removes_objects_whose_image_is_gone_and_keeps_the_rest(aws, owner, owner_client, queue, settings):
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        from django.core.files.uploadedfile import SimpleUploadedFile

        photo = SimpleUploadedFile("a.jpg", make_image(200, 100), "image/jpeg")
        kept = owner_client.post("/api/v1/images", {"image": photo}, HTTP_ACCEPT="application/json").json()["id"]
    gone = str(uuid.uuid4())
    for key in (f"originals/{gone}", f"renditions/{gone}/small", f"renditions/{gone}/400x400-fill"):
        default_storage.save(key, ContentFile(b"left behind"))

    settings.ORPHAN_SWEEP_AFTER_SECONDS = 3600  # too young to touch: an upload may be storing its original
    assert sweep_orphans() == 0 and keys(aws, f"renditions/{gone}/")

    settings.ORPHAN_SWEEP_AFTER_SECONDS = -1
    assert sweep_orphans() >= 3  # the fake bucket also holds what earlier tests left without rows
    assert keys(aws, f"renditions/{gone}/") == [] and keys(aws, f"originals/{gone}") == []
    assert keys(aws, f"originals/{kept}") == [f"originals/{kept}"]
