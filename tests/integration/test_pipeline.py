"""Real images through the real pipeline: HTTP -> S3 -> SQS -> celery worker -> S3."""

import pytest

from tests.integration.conftest import wait_for_status
from tests.support.images import decode, make_image, near, two_halves_jpeg

pytestmark = pytest.mark.integration

STANDARD = {"small": 100, "medium": 300, "large": 600}


def upload(api, data: bytes, name="photo.jpg", mime="image/jpeg"):
    return api.post(f"{api.base}/api/v1/images", files={"image": (name, data, mime)}, timeout=30)


def test_an_uploaded_photo_gets_three_renditions_of_the_right_size(api):
    resp = upload(api, make_image(1600, 1200))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "pending"
    assert set(body["urls"]) >= {"original", "small", "medium", "large"}

    done = wait_for_status(api, body["id"])
    assert done["status"] == "ready", done
    for name, box in STANDARD.items():
        r = api.get(done["urls"][name], timeout=10, auth=None)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "image/jpeg"
        im = decode(r.content)
        assert im.format == "JPEG"
        assert im.size == (box, box * 3 // 4)
    original = api.get(done["urls"]["original"], timeout=10, auth=None)
    assert original.status_code == 200 and decode(original.content).size == (1600, 1200)


def test_a_photo_with_exif_orientation_6_comes_out_upright(api):
    # Stored landscape, left half red; orientation 6 means "rotate 90 degrees
    # clockwise to display", so upright it is portrait with red on top.
    resp = upload(api, two_halves_jpeg(1200, 800, orientation=6))
    done = wait_for_status(api, resp.json()["id"])
    assert done["status"] == "ready", done
    im = decode(api.get(done["urls"]["large"], timeout=10, auth=None).content).convert("RGB")
    assert im.size == (400, 600)
    assert near(im.getpixel((200, 100)), (220, 20, 20))
    assert near(im.getpixel((200, 500)), (20, 20, 220))
    assert 0x0112 not in im.getexif()


def test_a_small_image_is_never_upscaled(api):
    resp = upload(api, make_image(240, 160, fmt="PNG"), name="tiny.png", mime="image/png")
    done = wait_for_status(api, resp.json()["id"])
    sizes = {name: (r["width"], r["height"]) for name, r in done["renditions"].items()}
    # The faces' annotated copy arrives on its own queue, maybe before the resize: never larger either.
    assert sizes.pop("annotated", (240, 160)) == (240, 160)
    assert sizes == {"small": (100, 67), "medium": (240, 160), "large": (240, 160)}


def test_a_corrupt_image_ends_failed_with_a_reason(api):
    data = make_image(2000, 1500, quality=95)
    truncated = data[: len(data) // 3]  # a valid header, then the data stops
    resp = upload(api, truncated)
    assert resp.status_code == 202, resp.text
    done = wait_for_status(api, resp.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "corrupt_image"
    assert "truncated" in done["error"]["message"]


def test_a_file_that_is_not_an_image_is_refused_with_a_json_error(api):
    resp = upload(api, b"%PDF-1.4 not an image at all", name="doc.pdf", mime="application/pdf")
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_format"


def test_the_api_needs_credentials(api, stack):
    import requests

    resp = requests.get(f"{stack.web_url}/api/v1/images", headers={"Accept": "application/json"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "not_authenticated"
