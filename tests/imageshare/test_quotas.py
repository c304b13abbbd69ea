"""One account cannot fill storage or the workers: quotas and caps on extra sizes."""

import pytest

from tests.conftest import upload_file
from tests.support.images import make_image

pytestmark = pytest.mark.django_db
JSON = "application/json"


def uploaded(client, data=None) -> str:
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        resp = client.post("/api/v1/images", {"image": upload_file(data=data)}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 202, resp.content
    return resp.json()["id"]


def ask(client, image_id, width, height, mode="fill"):
    return client.post(
        f"/api/v1/images/{image_id}/renditions",
        {"width": width, "height": height, "mode": mode},
        content_type="application/json",
        HTTP_ACCEPT=JSON,
    )


def test_an_upload_past_the_storage_quota_is_refused_with_413(owner_client, queue, settings):
    first = make_image(400, 300)
    settings.USER_STORAGE_QUOTA_BYTES = len(first) + 100
    uploaded(owner_client, first)
    resp = owner_client.post("/api/v1/images", {"image": upload_file(data=first)}, HTTP_ACCEPT=JSON)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "quota_exceeded"


def test_the_account_route_and_the_gallery_show_usage(owner_client, queue, settings):
    settings.USER_STORAGE_QUOTA_BYTES = 10**9
    data = make_image(400, 300)
    uploaded(owner_client, data)
    body = owner_client.get("/api/v1/account", HTTP_ACCEPT=JSON).json()
    assert body["storage"] == {"used_bytes": len(data), "quota_bytes": 10**9}
    assert b"Storage:" in owner_client.get("/gallery").content


def test_extra_sizes_per_image_are_capped(owner_client, queue, settings):
    settings.MAX_CUSTOM_SIZES_PER_IMAGE = 3
    settings.MAX_CUSTOM_SIZES_IN_FLIGHT = 100
    image_id = uploaded(owner_client)
    statuses = [ask(owner_client, image_id, 100 + i, 100).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    assert ask(owner_client, image_id, 100, 100).status_code == 202  # asking again for a queued size is fine
    assert ask(owner_client, image_id, 999, 100).json()["error"]["code"] == "too_many_sizes"


def test_the_faces_annotated_copy_is_not_one_of_the_extra_sizes(owner_client, queue, settings):
    from imageshare.images.models import Rendition

    settings.MAX_CUSTOM_SIZES_PER_IMAGE = 2
    settings.MAX_CUSTOM_SIZES_IN_FLIGHT = 100
    image_id = uploaded(owner_client)
    Rendition.objects.create(
        image_id=image_id,
        name="annotated",
        format="JPEG",
        key=f"renditions/{image_id}/annotated",
        content_type="image/jpeg",
        width=100,
        height=100,
        byte_size=1000,
    )  # what the analysis worker stores
    statuses = [ask(owner_client, image_id, 100 + i, 100).status_code for i in range(3)]
    assert statuses == [202, 202, 429]


def test_one_accounts_extra_sizes_in_flight_are_capped(owner_client, queue, settings):
    settings.MAX_CUSTOM_SIZES_PER_IMAGE = 100
    settings.MAX_CUSTOM_SIZES_IN_FLIGHT = 4
    image_id = uploaded(owner_client)
    statuses = [ask(owner_client, image_id, 100 + i, 100).status_code for i in range(6)]
    assert statuses == [202, 202, 202, 202, 429, 429]
    refused = ask(owner_client, image_id, 300, 100)
    assert refused.json()["error"]["code"] == "too_many_in_flight" and refused.headers["Retry-After"]


def test_only_listed_sizes_when_an_allow_list_is_set(owner_client, queue, settings):
    settings.CUSTOM_SIZES_ALLOWED = frozenset({"400x400"})
    image_id = uploaded(owner_client)
    assert ask(owner_client, image_id, 400, 400).status_code == 202
    resp = ask(owner_client, image_id, 401, 400)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "size_not_allowed"
