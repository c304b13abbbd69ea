"""The JSON API against in-process fake AWS (mock_aws): validation, queueing, permissions."""

import json

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from imageshare.images.models import Image
from tests.support.images import make_image

pytestmark = pytest.mark.django_db


def post_image(client, data, name="photo.jpg", mime="image/jpeg", **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        "/api/v1/images",
        {"image": SimpleUploadedFile(name, data, content_type=mime)},
        HTTP_ACCEPT="application/json",
        **extra,
    )


def queued_messages(aws, queue="queue_url"):
    resp = aws["sqs"].receive_message(QueueUrl=aws[queue], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return resp.get("Messages", [])


def test_an_upload_is_stored_recorded_and_queued_after_commit(owner_client, queue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        resp = post_image(owner_client, make_image(1200, 800))
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["status"] == "pending"
    assert set(body["urls"]) >= {"original", "small", "medium", "large"}
    assert len(callbacks) == 2  # both enqueues (resize, analysis) waited for the commit

    image = Image.objects.get(pk=body["id"])
    assert (image.width, image.height, image.content_type) == (1200, 800, "image/jpeg")
    assert default_storage.exists(image.original_key)

    (message,) = queued_messages(queue)
    (analysis,) = queued_messages(queue, "analysis_url")
    for m in (message, analysis):
        assert body["id"] in _decoded(m["Body"])
        assert len(m["Body"]) < 4096  # ids only, never image bytes


def _decoded(body: str) -> str:
    import base64

    envelope = json.loads(base64.b64decode(body))
    return base64.b64decode(envelope["body"]).decode()


def test_it_rejects_a_missing_image(owner_client, queue):
    resp = owner_client.post("/api/v1/images", {}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 400
    assert resp.json() == {"error": {"code": "missing_image", "message": resp.json()["error"]["message"]}}


def test_it_rejects_a_file_that_is_not_an_image(owner_client, queue):
    resp = post_image(owner_client, b"just some text", name="notes.txt", mime="text/plain")
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_format"
    assert Image.objects.count() == 0
    assert queued_messages(queue) == []


@override_settings(MAX_UPLOAD_BYTES=10_000)
def test_it_rejects_an_oversized_upload(owner_client, queue):
    resp = post_image(owner_client, make_image(1000, 1000, fmt="PNG", color=(1, 2, 3)) + b"\0" * 20_000)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_large"
    assert Image.objects.count() == 0


@override_settings(MAX_IMAGE_PIXELS=100_000)
def test_it_rejects_an_image_over_the_pixel_limit(owner_client, queue):
    resp = post_image(owner_client, make_image(500, 400))
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_many_pixels"


def test_anonymous_clients_get_a_json_401(client, aws):
    resp = post_image(client, make_image(100, 100))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "not_authenticated"


def test_basic_auth_works_for_scripts(client, owner, queue):
    import base64

    token = base64.b64encode(b"owner:owner-pass-123").decode()
    resp = post_image(client, make_image(300, 200), HTTP_AUTHORIZATION=f"Basic {token}")
    assert resp.status_code == 202


def test_another_users_image_is_a_404_like_a_missing_one(owner_client, other_user, queue, client):
    image_id = post_image(owner_client, make_image(300, 200)).json()["id"]
    assert owner_client.get(f"/api/v1/images/{image_id}").status_code == 200
    owner_client.logout()
    client.force_login(other_user)
    resp = client.get(f"/api/v1/images/{image_id}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/images/not-a-uuid").status_code == 404


def test_the_list_shows_only_own_images_and_filters_by_status(owner_client, other_user, queue):
    for _ in range(3):
        post_image(owner_client, make_image(300, 200))
    Image.objects.filter(pk=Image.objects.first().pk).update(status="failed")
    listing = owner_client.get("/api/v1/images").json()
    assert listing["count"] == 3
    assert owner_client.get("/api/v1/images?status=failed").json()["count"] == 1
    assert owner_client.get("/api/v1/images?status=bogus").status_code == 400


def test_a_client_that_does_not_accept_json_gets_406(owner_client, queue):
    resp = owner_client.get("/api/v1/images", HTTP_ACCEPT="text/csv")
    assert resp.status_code == 406


def _original_keys(aws) -> set[str]:
    listing = aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix="originals/")
    return {o["Key"] for o in listing.get("Contents", [])}


@pytest.mark.django_db(transaction=True)  # the enqueue runs on a real commit
def test_the_queue_being_down_gives_503_and_leaves_nothing_behind(owner_client, queue, monkeypatch):
    from thumbnails.tasks import make_renditions

    before = _original_keys(queue)

    def broken(*args, **kwargs):
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(make_renditions, "delay", broken)
    resp = post_image(owner_client, make_image(300, 200))
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "queue_unavailable" and resp.headers["Retry-After"] == "5"
    assert Image.objects.count() == 0
    assert _original_keys(queue) == before  # the stored original was removed again
