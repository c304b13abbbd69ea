"""Private and open deployments: who sees what, on pages, API and image URLs alike."""

import pytest
from django.test import Client

from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def uploaded(client):
    resp = client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 202, resp.content
    return resp.json()


@pytest.fixture
def other_client(other_user):
    c = Client()
    c.force_login(other_user)
    return c


def test_private_mode_hides_an_image_from_other_users_and_anonymous_visitors_with_404s(
    owner_client, other_client, anon, queue
):
    body = uploaded(owner_client)
    image_id = body["id"]
    file_url = body["urls"]["original"]
    assert "/i/" in file_url  # through the app, never a bare S3 URL
    for visitor in (other_client, anon):
        assert visitor.get(f"/images/{image_id}").status_code == 404
        assert visitor.get(f"/api/v1/images/{image_id}").status_code in (401, 404)
        assert visitor.get(file_url).status_code in (401, 404)
    assert other_client.get(f"/api/v1/images/{image_id}").status_code == 404  # not 403: ids leak nothing
    assert anon.get(f"/api/v1/images/{image_id}").status_code == 401  # anonymous: log in first


def test_private_mode_redirects_the_owner_to_a_short_lived_presigned_url(owner_client, queue, settings):
    body = uploaded(owner_client)
    resp = owner_client.get(body["urls"]["original"])
    assert resp.status_code == 302
    assert "X-Amz-Signature" in resp["Location"]
    assert f"X-Amz-Expires={settings.PRESIGNED_REDIRECT_TTL}" in resp["Location"]
    assert owner_client.get(body["urls"]["small"]).status_code == 404  # not made yet


def test_open_mode_shows_an_image_to_anyone_with_the_link(owner_client, anon, queue, open_mode):
    body = uploaded(owner_client)
    assert anon.get(f"/images/{body['id']}").status_code == 200
    assert anon.get(f"/api/v1/images/{body['id']}").status_code == 200
    assert "X-Amz-Signature" not in body["urls"]["original"]  # public object URL
    assert anon.get("/api/v1/images").status_code == 401  # listing is still per account


def test_open_mode_uses_the_cdn_for_urls_when_configured(owner_client, queue, open_mode):
    open_mode.CDN_BASE_URL = "https://cdn.example.com"
    body = uploaded(owner_client)
    assert body["urls"]["small"] == f"https://cdn.example.com/renditions/{body['id']}/small"


def test_open_mode_accepts_anonymous_uploads_but_only_owners_delete(anon, owner_client, queue, open_mode):
    body = uploaded(anon)
    assert body["status"] == "pending"
    assert anon.delete(f"/api/v1/images/{body['id']}").status_code == 401
    assert owner_client.delete(f"/api/v1/images/{body['id']}").status_code == 404


def test_private_mode_refuses_anonymous_uploads(client, queue):
    resp = client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 401
