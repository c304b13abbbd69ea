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
from imageshare.images.storage import s3_client
from tests.conftest import stored_image
from tests.support.images import make_image
from thumbnails.tasks import make_renditions

pytestmark = pytest.mark.django_db


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

    monkeypatch.setattr(s3_client(), "get_object", slow_down)
    with pytest.raises(TRANSIENT_ERRORS):
        make_renditions.run(str(image.id))
    image.refresh_from_db()
    assert image.status == "pending"


@pytest.fixture
def s3_calls(aws):
    """Every S3 operation the task makes (its own client and django-storages' one), in order."""
    calls: list[str] = []

    def record(model, **_):
        calls.append(model.name)

    clients = [s3_client(), default_storage.connection.meta.client]
    for c in clients:
        c.meta.events.register("before-call.s3", record)
    yield calls
    for c in clients:
        c.meta.events.unregister("before-call.s3", record)


def test_it_makes_one_get_and_one_put_per_rendition_and_no_head(aws, owner, s3_calls):
    image = stored_image(owner, make_image(1600, 1200))
    s3_calls.clear()
    make_renditions.run(str(image.id))
    assert sorted(s3_calls) == ["GetObject", "PutObject", "PutObject", "PutObject"]
    assert "HeadObject" not in s3_calls


def test_extra_formats_are_stored_with_their_own_content_type(aws, owner, settings, s3_calls):
    settings.EXTRA_FORMATS = ("WEBP",)
    image = stored_image(owner, make_image(1600, 1200))
    make_renditions.run(str(image.id))
    types = {r.key: r.content_type for r in image.renditions.all()}
    assert len(types) == 6 and "HeadObject" not in s3_calls
    for key, content_type in types.items():
        obj = s3_object(aws, key)
        assert obj["ContentType"] == content_type == ("image/webp" if key.endswith(".webp") else "image/jpeg")
        assert obj["CacheControl"] == "private, max-age=86400"
        assert PILImage.open(io.BytesIO(obj["Body"].read())).format == ("WEBP" if key.endswith(".webp") else "JPEG")


def writes(queries):
    return [q["sql"].split()[0].upper() for q in queries if q["sql"].split()[0].upper() in ("INSERT", "UPDATE")]


def test_a_finished_task_records_in_one_transaction_of_two_statements(aws, owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    image = stored_image(owner, make_image(1600, 1200))
    with CaptureQueriesContext(connection) as ctx:
        make_renditions.run(str(image.id))
    sql = [q["sql"] for q in ctx.captured_queries]
    # The attempt is counted at the start (its own write: see the task's docstring) ...
    assert writes(ctx.captured_queries) == ["UPDATE", "UPDATE", "INSERT"]
    assert "attempts" in next(s for s in sql if s.startswith("UPDATE"))
    # ... and everything the finished task records is one transaction (a savepoint here,
    # inside the test's own transaction): the image's UPDATE and one upsert of every rendition.
    begin = next(i for i, s in enumerate(sql) if s.startswith("SAVEPOINT"))
    end = next(i for i, s in enumerate(sql) if s.startswith("RELEASE SAVEPOINT"))
    inside = ctx.captured_queries[begin + 1 : end]
    assert writes(inside) == ["UPDATE", "INSERT"] and len(inside) == 2
    assert "ON CONFLICT" in inside[1]["sql"].upper()
    image.refresh_from_db()
    assert image.status == "ready" and image.attempts == 1 and image.renditions.count() == 3


def test_a_rerun_updates_the_rendition_rows_in_place(aws, owner):
    image = stored_image(owner, make_image(1600, 1200))
    make_renditions.run(str(image.id))
    before = {r.name: (r.pk, r.width) for r in image.renditions.all()}
    # An extra-size request re-renders "large" smaller: same row, new size.
    make_renditions.run(str(image.id), [{"name": "large", "width": 200, "height": 200}])
    after = {r.name: (r.pk, r.width) for r in image.renditions.all()}
    assert after == {**before, "large": (before["large"][0], 200)}
    large = image.renditions.get(name="large")
    assert s3_object(aws, large.key)["ContentLength"] == large.byte_size


def test_the_worker_main_process_stamps_when_a_message_arrived():
    from types import SimpleNamespace

    from thumbnails.tasks import RECEIVED_KEY, _stamp_received

    mine = SimpleNamespace(name="thumbnails.tasks.make_renditions", request_dict={})
    other = SimpleNamespace(name="ops.worker.protection.something", request_dict={})
    _stamp_received(request=mine)
    _stamp_received(request=other)
    assert isinstance(mine.request_dict[RECEIVED_KEY], float) and other.request_dict == {}


def test_the_s3_client_is_built_once_per_process(aws):
    assert s3_client() is s3_client()


def test_open_mode_renditions_are_stored_immutable_private_mode_ones_private(aws, owner, settings):
    image = stored_image(owner, make_image(800, 600))
    make_renditions.run(str(image.id))
    assert {s3_object(aws, r.key)["CacheControl"] for r in image.renditions.all()} == {"private, max-age=86400"}
    settings.IMAGESHARE_MODE = "open"
    other = stored_image(owner, make_image(800, 600))
    make_renditions.run(str(other.id))
    assert {s3_object(aws, r.key)["CacheControl"] for r in other.renditions.all()} == {
        "public, max-age=31536000, s-maxage=86400, immutable"
    }


def test_a_task_out_of_retries_says_so_on_its_image_never_leaving_it_pending(aws, owner):
    """Celery's on_failure (retries spent, an unexpected error): each task records it where the user looks."""
    from imageshare.images.models import Analysis
    from thumbnails.analysis import analyse_image

    image = stored_image(owner, make_image(400, 300))
    make_renditions.on_failure(ConnectionError("S3 down"), "task-id", (str(image.id),), {}, None)
    image.refresh_from_db()
    assert (image.status, image.failure_code) == ("failed", "processing_error")
    assert "ConnectionError" in image.failure_reason

    analyse_image.on_failure(RuntimeError("bug"), "task-id", (), {"image_id": str(image.id)}, None)
    analysis = Analysis.objects.get(image=image)
    assert analysis.status == "failed" and "RuntimeError" in analysis.error
