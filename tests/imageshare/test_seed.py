"""The seed-compatible endpoints, exactly as older clients and load generators use them."""

import pytest
from django.test import Client

from tests.conftest import upload_file
from tests.support.images import make_image

pytestmark = pytest.mark.django_db
JSON = "application/json"


@pytest.fixture
def basic_client(owner):
    """What the seed clients send: basic auth on every request, no session, no CSRF token."""
    import base64

    return Client(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"owner:owner-pass-123").decode())


def test_post_root_with_json_accept_returns_202_and_the_four_urls(basic_client, queue):
    resp = basic_client.post("/", {"image": upload_file()}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 202
    assert {"original", "small", "medium", "large"} <= set(resp.json())


def test_post_root_without_an_image_is_400(basic_client, queue):
    resp = basic_client.post("/", {}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "missing_image"


def test_post_root_with_an_invalid_image_is_400_or_415(basic_client, queue):
    assert basic_client.post("/", {"image": upload_file(data=b"nope")}, HTTP_ACCEPT=JSON).status_code == 415
    truncated = make_image(200, 200)[:40]
    assert basic_client.post("/", {"image": upload_file(data=truncated)}, HTTP_ACCEPT=JSON).status_code in (400, 415)


def test_post_root_refuses_clients_that_do_not_accept_json(basic_client, queue):
    resp = basic_client.post("/", {"image": upload_file()}, HTTP_ACCEPT="image/png")
    assert resp.status_code == 406 and resp.json()["error"]["code"] == "not_acceptable"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_methods_on_root_are_405_in_json(basic_client, method):
    resp = getattr(basic_client, method)("/", HTTP_ACCEPT=JSON)
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


def test_post_root_over_the_limit_is_413(basic_client, queue, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    resp = basic_client.post("/", {"image": upload_file(data=make_image(400, 400, quality=95))}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 413


def test_get_root_from_a_browser_is_still_the_home_page(owner_client):
    resp = owner_client.get("/", HTTP_ACCEPT="text/html")
    assert resp.status_code == 200 and b"Upload photos" in resp.content


def test_anonymous_post_root_follows_the_mode(client, queue, settings):
    assert client.post("/", {"image": upload_file()}, HTTP_ACCEPT=JSON).status_code == 401
    settings.IMAGESHARE_MODE = "open"
    assert client.post("/", {"image": upload_file()}, HTTP_ACCEPT=JSON).status_code == 202


def test_register_is_off_unless_open_registration_is_enabled(client, settings):
    resp = client.post("/api/register", {"username": "newuser", "password": "a-long-pass-9876"})
    assert resp.status_code == 404
    assert resp.json() == {"success": False, "error": {"code": 404, "message": resp.json()["error"]["message"]}}
    settings.OPEN_REGISTRATION = True
    resp = client.post("/api/register", {"username": "newuser", "password": "a-long-pass-9876"})
    assert resp.status_code == 201 and resp.json() == {"success": True}
    dup = client.post("/api/register", {"username": "newuser", "password": "a-long-pass-9876"})
    assert dup.status_code == 409 and dup.json()["success"] is False
    weak = client.post("/api/register", {"username": "other1", "password": "123"})
    assert weak.status_code == 400 and weak.json()["error"]["code"] == 400
    bad = client.post("/api/register", {"username": "bad name!", "password": "a-long-pass-9876"})
    assert bad.status_code == 400


def test_upload_with_credentials_in_the_form(client, owner, queue):
    ok = client.post("/api/upload", {"username": "owner", "password": "owner-pass-123", "file": upload_file()})
    assert ok.status_code == 202
    body = ok.json()
    assert body["success"] is True and body["payload"]["status"] == "pending"
    assert {"original", "small", "medium", "large"} <= set(body["payload"]["urls"])
    wrong = Client().post("/api/upload", {"username": "owner", "password": "bad", "file": upload_file()})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == 401
    missing = client.post("/api/upload", {"username": "owner", "password": "owner-pass-123"})
    assert missing.status_code == 400 and missing.json()["success"] is False
    assert client.get("/api/upload").status_code == 405


def test_post_root_without_an_accept_header_is_a_json_upload(basic_client, queue):
    # No Accept header allows any type, JSON included (what curl sends by default).
    resp = basic_client.post("/", {"image": upload_file()})
    assert resp.status_code == 202
    assert {"original", "small", "medium", "large"} <= set(resp.json())


def test_a_browser_form_posts_to_upload_and_stays_a_page(owner_client, queue):
    resp = owner_client.post(
        "/upload", {"image": upload_file()}, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8", follow=True
    )
    assert resp.status_code == 200 and b"Upload photos" in resp.content


def test_a_session_cookie_alone_does_not_authorise_post_root(owner_client, queue):
    """POST / takes no CSRF token, so the cookie a browser sends along from any site must not count."""
    from imageshare.images.models import Image

    resp = owner_client.post("/", {"image": upload_file()}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 401 and resp.json()["error"]["code"] == "not_authenticated"
    assert not Image.objects.exists()


def test_get_root_asking_for_json_is_405_in_json(basic_client):
    resp = basic_client.get("/", HTTP_ACCEPT=JSON)
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "method_not_allowed"


def test_post_root_accepts_a_token(owner, queue):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=owner)
    resp = Client().post("/", {"image": upload_file()}, HTTP_ACCEPT=JSON, HTTP_AUTHORIZATION=f"Token {token.key}")
    assert resp.status_code == 202
