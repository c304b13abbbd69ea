"""The rest of the JSON API: delete, extra renditions, tokens, CSRF, error shapes, OpenAPI."""

import json

import pytest
from django.test import Client

from imageshare.images.models import Image, Rendition
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def upload(client, **extra):
    resp = client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json", **extra)
    assert resp.status_code == 202, resp.content
    return resp.json()


def s3_keys(aws, prefix):
    return {o["Key"] for o in aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=prefix).get("Contents", [])}


def test_delete_removes_the_row_and_every_s3_object(owner_client, queue):
    from thumbnails.tasks import make_renditions

    body = upload(owner_client)
    make_renditions.run(body["id"])  # renditions exist in S3 now
    assert s3_keys(queue, f"renditions/{body['id']}/")
    resp = owner_client.delete(f"/api/v1/images/{body['id']}")
    assert resp.status_code == 204
    assert not Image.objects.filter(pk=body["id"]).exists()
    assert not s3_keys(queue, f"renditions/{body['id']}/")
    assert not s3_keys(queue, f"originals/{body['id']}")


def test_only_the_owner_deletes(owner_client, other_user, queue):
    body = upload(owner_client)
    other = Client()
    other.force_login(other_user)
    assert other.delete(f"/api/v1/images/{body['id']}").status_code == 404
    assert Image.objects.filter(pk=body["id"]).exists()


def test_an_extra_rendition_is_queued_then_made_at_the_exact_size(owner_client, queue):
    from thumbnails.tasks import make_renditions

    body = upload(owner_client)
    make_renditions.run(body["id"])
    url = f"/api/v1/images/{body['id']}/renditions"
    resp = owner_client.post(url, {"width": 400, "height": 300, "mode": "fill"}, content_type="application/json")
    assert resp.status_code == 202
    assert resp.json()["name"] == "400x300-fill" and resp.json()["status"] == "pending"
    # Extra sizes wait in a queue of their own, never in front of new uploads.
    messages = queue["sqs"].receive_message(QueueUrl=queue["extras_url"], MaxNumberOfMessages=10)["Messages"]
    assert any("400x300-fill" in m["Body"] or "400x300-fill" in _decoded(m["Body"]) for m in messages)
    make_renditions.run(body["id"], [{"name": "400x300-fill", "width": 400, "height": 300, "mode": "fill"}])
    r = Rendition.objects.get(image_id=body["id"], name="400x300-fill")
    assert (r.width, r.height) == (400, 300)
    again = owner_client.post(url, {"width": 400, "height": 300, "mode": "fill"}, content_type="application/json")
    assert again.status_code == 200 and again.json()["status"] == "ready"


def _decoded(body):
    import base64

    return base64.b64decode(json.loads(base64.b64decode(body))["body"]).decode()


@pytest.mark.parametrize(
    "payload",
    [
        {"width": 0, "height": 10},
        {"width": 10},
        {"width": 5000, "height": 10},
        {"width": 10, "height": 10, "mode": "stretch"},
        {"width": "x", "height": 2},
    ],
)
def test_bad_rendition_requests_get_a_400(owner_client, queue, payload):
    body = upload(owner_client)
    resp = owner_client.post(f"/api/v1/images/{body['id']}/renditions", payload, content_type="application/json")
    assert resp.status_code == 400
    assert set(resp.json()["error"]) == {"code", "message"}


def test_a_token_lets_scripts_in(client, owner, queue):
    resp = client.post("/api/v1/token", {"username": "owner", "password": "owner-pass-123"})
    token = resp.json()["token"]
    assert upload(Client(), HTTP_AUTHORIZATION=f"Token {token}")["status"] == "pending"
    assert client.post("/api/v1/token", {"username": "owner", "password": "nope"}).status_code == 401


def test_session_writes_need_the_csrf_token(owner, queue):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    resp = browser.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "permission_denied"
    page = browser.get("/")
    token = page.cookies["csrftoken"].value
    ok = browser.post(
        "/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert ok.status_code == 202


def test_error_shapes_and_statuses(owner_client, queue):
    assert owner_client.put("/api/v1/images").status_code == 405
    assert owner_client.put("/api/v1/images").json()["error"]["code"] == "method_not_allowed"
    assert owner_client.get("/api/v1/images", HTTP_ACCEPT="text/csv").status_code == 406
    bad_type = owner_client.post("/api/v1/images", "x=1", content_type="text/plain")
    assert bad_type.status_code == 415
    assert bad_type.json()["error"]["code"] == "unsupported_media_type"
    missing = owner_client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_uploads_are_rate_limited_with_a_json_429(owner_client, queue, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    # The rates are read once at import; set them for this test only.
    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100/min", "user": "100/min", "uploads": "2/min"}
    )
    codes = [
        owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json").status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    resp = owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    assert resp.json()["error"]["code"] == "throttled"
    assert "Retry-After" in resp.headers


def test_the_openapi_description_is_generated_from_the_code(client):
    resp = client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    schema = json.loads(resp.content)
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/images", "/api/v1/images/{image_id}", "/api/v1/images/{image_id}/renditions"} <= set(
        schema["paths"]
    )
    assert "multipart/form-data" in schema["paths"]["/api/v1/images"]["post"]["requestBody"]["content"]


def test_the_upload_rate_does_not_limit_listing_and_polling(owner_client, queue, monkeypatch):
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(
        SimpleRateThrottle, "THROTTLE_RATES", {"anon": "100/min", "user": "100/min", "uploads": "1/min"}
    )
    assert (
        owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json").status_code == 202
    )
    assert all(owner_client.get("/api/v1/images?status=pending").status_code == 200 for _ in range(5))


def test_too_many_files_is_a_json_error_not_djangos_page(owner_client, queue, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 5
    from tests.conftest import upload_file

    files = [upload_file(f"{i}.jpg", data=b"x") for i in range(8)]
    resp = owner_client.post("/api/v1/images", {"image": files}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_request"
