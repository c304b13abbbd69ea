"""The resize task's I/O around the engine, on in-process fake S3.

The task function is called directly (no broker): what is tested here is what
it reads and writes, not Celery's delivery, which the integration tests cover.
"""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from imageshare.images.models import Image
from tests.support.images import make_image
from thumbnails.tasks import make_renditions

pytestmark = pytest.mark.django_db


def stored_image(owner, data: bytes) -> Image:
    probe = PILImage.open(io.BytesIO(data))
    image = Image(owner=owner, content_type="image/jpeg", width=probe.width, height=probe.height, byte_size=len(data))
    image.original_key = f"originals/{image.id}"
    default_storage.save(image.original_key, ContentFile(data))
    image.save()
    return image


def s3_object(aws, key):
    return aws["s3"].get_object(Bucket=aws["bucket"], Key=key)


def test_it_stores_each_rendition_with_content_type_and_cache_headers(aws, owner):
    image = stored_image(owner, make_image(1600, 1200))
    make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "ready" and image.ready_at is not None
    for r in image.renditions.all():
        obj = s3_object(aws, r.key)
        assert obj["ContentType"] == "image/jpeg"
        assert "max-age" in obj["CacheControl"]
        assert PILImage.open(io.BytesIO(obj["Body"].read())).size == (r.width, r.height)
    assert {r.key for r in image.renditions.all()} == {
        f"renditions/{image.id}/{n}" for n in ("small", "medium", "large")
    }


def test_running_it_twice_is_harmless(aws, owner):
    image = stored_image(owner, make_image(1600, 1200))
    make_renditions.run(str(image.id))
    Image.objects.filter(pk=image.pk).update(status="pending")  # as if SQS delivered the message again mid-way
    make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "ready"
    assert image.renditions.count() == 3
    listing = aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=f"renditions/{image.id}/")
    assert listing["KeyCount"] == 3


def test_a_ready_image_is_skipped(aws, owner):
    image = stored_image(owner, make_image(800, 600))
    make_renditions.run(str(image.id))
    assert make_renditions.run(str(image.id)) == {"image": str(image.id), "skipped": "ready"}


def test_a_deleted_image_is_skipped(aws, owner):
    image = stored_image(owner, make_image(800, 600))
    image_id = str(image.id)
    image.delete()
    assert make_renditions.run(image_id)["skipped"] == "missing"


def test_an_undecodable_image_is_marked_failed_with_a_reason(aws, owner):
    data = make_image(2000, 1500, quality=95)
    image = stored_image(owner, data[: len(data) // 3])
    make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "failed"
    assert image.failure_code == "corrupt_image"
    assert image.failure_reason


def test_only_named_transient_errors_are_retried():
    from botocore.exceptions import EndpointConnectionError
    from django.db import OperationalError

    retried = make_renditions.autoretry_for
    assert EndpointConnectionError in retried and OperationalError in retried
    assert Exception not in retried and ValueError not in retried
    assert make_renditions.acks_late and make_renditions.reject_on_worker_lost


def test_images_whose_files_are_gone_after_a_local_restart_are_marked_failed(aws, owner):
    from django.core.management import call_command

    image = stored_image(owner, make_image(300, 200))
    call_command("mark_lost_images")
    image.refresh_from_db()
    assert image.status == "pending"  # its original is there: untouched
    # As after a restart of moto: the bucket holds no originals at all.
    for name in default_storage.listdir("originals/")[1]:
        default_storage.delete(f"originals/{name}")
    call_command("mark_lost_images")
    image.refresh_from_db()
    assert image.status == "failed" and image.failure_code == "files_lost"


def keys_under(aws, prefix):
    return [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=prefix).get("Contents", [])]


def test_an_image_deleted_while_its_renditions_are_made_leaves_no_object(aws, owner, monkeypatch):
    from imageshare.images.commands import delete_image
    from thumbnails import engine

    image = stored_image(owner, make_image(800, 600))
    real_render = engine.render

    def render_then_user_deletes(*args, **kwargs):
        result = real_render(*args, **kwargs)
        delete_image(Image.objects.get(pk=image.pk))  # the user's DELETE lands mid-task
        return result

    monkeypatch.setattr(engine, "render", render_then_user_deletes)
    assert make_renditions.run(str(image.id))["skipped"] == "deleted"
    assert keys_under(aws, f"renditions/{image.id}/") == [] and keys_under(aws, f"originals/{image.id}") == []


def test_a_delete_sweeps_again_after_the_row_is_gone(aws, owner, monkeypatch):
    """A worker that wrote between the delete's first sweep and the row's removal is caught by the second."""
    from imageshare.images import commands

    image = stored_image(owner, make_image(800, 600))
    real_delete = Image.delete

    def worker_writes_then_row_goes(self, *args, **kwargs):
        default_storage.save(f"renditions/{self.id}/small", ContentFile(b"late"))
        return real_delete(self, *args, **kwargs)

    monkeypatch.setattr(Image, "delete", worker_writes_then_row_goes)
    commands.delete_image(image)
    assert keys_under(aws, f"renditions/{image.id}/") == []


def test_a_lost_original_fails_with_a_plain_reason_and_no_retry(aws, owner):
    from imageshare.images.commands import can_retry

    image = stored_image(owner, make_image(300, 200))
    aws["s3"].delete_object(Bucket=aws["bucket"], Key=image.original_key)
    make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "failed" and image.failure_code == "original_missing"
    assert not can_retry(image)


def test_a_throttled_s3_is_retried_not_failed(aws, owner, monkeypatch):
    from botocore.exceptions import ClientError

    from thumbnails.tasks import TRANSIENT_ERRORS

    image = stored_image(owner, make_image(300, 200))

    def slow_down(*args, **kwargs):
        raise ClientError({"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")

    monkeypatch.setattr(default_storage, "open", slow_down)
    with pytest.raises(TRANSIENT_ERRORS):
        make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "pending"
