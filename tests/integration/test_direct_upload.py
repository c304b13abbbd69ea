"""Direct uploads over real HTTP: presign on the web tier, the file POSTed to moto's S3, finalize.

Against the shared running stack (private mode), with ``requests`` as a
client would: the presigned form POST goes to moto's server, never to
gunicorn. moto does not enforce a POST policy's conditions (length, type),
which is what lets these tests put an oversized or non-image object there:
finalize is what refuses them, and removes the object.
"""

from __future__ import annotations

import pytest
import requests

from ops.deploy.clients import client
from tests.integration.conftest import ADMIN_PASSWORD
from tests.integration.http_support import (
    api_token,
    assert_json_error,
    clear_rate_limits,
    create_account,
    form_login,
    jpeg_bytes,
    pixel_size,
    require,
    token_session,
    wait_until_not_pending,
)
from tests.integration.test_browser import login, page  # noqa: F401 (the page fixture: headless Chromium)

pytestmark = pytest.mark.integration

OTHER = ("direct-other", "direct-other-pass-5521-heron")
LIMIT = 25 * 1024 * 1024  # the stack's MAX_UPLOAD_BYTES (the default)


@pytest.fixture(scope="module", autouse=True)
def _fresh_limits(stack):
    clear_rate_limits(stack)


@pytest.fixture(scope="module")
def admin(stack, admin_token) -> requests.Session:
    return token_session(stack.web_url, admin_token)


@pytest.fixture(scope="module")
def other(stack) -> requests.Session:
    base = stack.web_url
    create_account(form_login(base, "admin", ADMIN_PASSWORD), base, *OTHER)
    return token_session(base, api_token(base, *OTHER))


@pytest.fixture(scope="module")
def s3(stack):
    return client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL"], region=stack.env["AWS_REGION"])


def presign(api: requests.Session, **body) -> dict:
    resp = api.post(f"{api.base}/api/v1/uploads", json=body, timeout=30)
    require(resp.status_code == 201, f"POST /api/v1/uploads: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def send_to_s3(presigned: dict, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    """The browser's or client's form POST: the policy's fields, then the file, straight to S3."""
    fields = dict(presigned["fields"])
    fields.setdefault("Content-Type", content_type)
    return requests.post(presigned["url"], data=fields, files={"file": (name, data, content_type)}, timeout=120)


def object_exists(s3, stack, key: str) -> bool:
    bucket = stack.env.get("S3_BUCKET", "imageshare-media")
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents"))


def test_presign_post_to_s3_finalize_and_the_image_becomes_ready(stack, admin, s3):
    data = jpeg_bytes(1200, 800)
    presigned = presign(admin, content_type="image/jpeg", size=len(data))
    assert presigned["url"].startswith(stack.env["AWS_ENDPOINT_URL"])  # S3 (moto), not the web tier
    assert not presigned["url"].startswith(stack.web_url)
    assert presigned["finalize_url"].startswith(stack.web_url)
    sent = send_to_s3(presigned, data)
    assert sent.status_code in (200, 201, 204), sent.text[:300]
    assert object_exists(s3, stack, presigned["key"])

    resp = admin.post(presigned["finalize_url"], json={"name": "direct.jpg"}, timeout=30)
    assert resp.status_code == 202, resp.text[:300]
    image = resp.json()
    assert image["id"] == presigned["upload_id"] and image["name"] == "direct.jpg"
    assert (image["width"], image["height"], image["bytes"]) == (1200, 800, len(data))
    assert not object_exists(s3, stack, presigned["key"])  # copied to originals/<id>, then removed

    ready = wait_until_not_pending(admin, image["id"], timeout=90)
    assert ready["status"] == "ready", ready
    assert {"small", "medium", "large"} <= set(ready["renditions"])
    small = admin.get(ready["renditions"]["small"]["url"], timeout=30)  # /i/... -> presigned S3 URL
    assert small.status_code == 200 and pixel_size(small.content)[0] == ready["renditions"]["small"]["width"]
    original = admin.get(ready["urls"]["original"], timeout=30)
    assert original.content == data


def test_a_second_finalize_answers_the_same_image(admin):
    presigned = presign(admin)
    require(send_to_s3(presigned, jpeg_bytes()).ok, "POST to S3")
    first = admin.post(presigned["finalize_url"], timeout=30)
    again = admin.post(presigned["finalize_url"], timeout=30)
    assert (first.status_code, again.status_code) == (202, 200), (first.text[:200], again.text[:200])
    assert again.json()["id"] == first.json()["id"] == presigned["upload_id"]


def test_another_users_upload_is_refused_and_left_to_its_owner(stack, admin, other, s3):
    presigned = presign(admin)
    require(send_to_s3(presigned, jpeg_bytes()).ok, "POST to S3")
    assert_json_error(other.post(presigned["finalize_url"], timeout=30), 404, "no_such_upload")
    assert object_exists(s3, stack, presigned["key"])  # still the owner's to finalize
    assert admin.post(presigned["finalize_url"], timeout=30).status_code == 202
    assert_json_error(other.post(presigned["finalize_url"], timeout=30), 404, "no_such_upload")


def test_finalize_before_sending_the_file_says_nothing_was_uploaded(admin):
    presigned = presign(admin)
    body = assert_json_error(admin.post(presigned["finalize_url"], timeout=30), 404, "no_such_upload")
    assert "presigned url" in body["error"]["message"]


def test_an_oversized_object_is_refused_at_finalize_and_removed(stack, admin, s3):
    presigned = presign(admin)
    sent = send_to_s3(presigned, b"\xff\xd8\xff\xe0" + bytes(LIMIT + 1))
    if not sent.ok:  # an S3 that enforces the policy refused it: nothing to finalize
        assert_json_error(admin.post(presigned["finalize_url"], timeout=30), 404, "no_such_upload")
        return
    assert object_exists(s3, stack, presigned["key"])  # moto kept it: finalize must refuse it
    body = assert_json_error(admin.post(presigned["finalize_url"], timeout=30), 413, "too_large")
    assert str(LIMIT) in body["error"]["message"]
    assert not object_exists(s3, stack, presigned["key"])
    assert_json_error(admin.get(f"{admin.base}/api/v1/images/{presigned['upload_id']}", timeout=10), 404)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"<html><body>not an image</body></html>", 415, id="html"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"garbage" * 40, 400, id="corrupt-jpeg"),
    ],
)
def test_not_an_image_is_refused_at_finalize_and_removed(stack, admin, s3, data, status):
    presigned = presign(admin)
    require(send_to_s3(presigned, data, "fake.jpg", "image/jpeg").ok, "POST to S3")
    assert_json_error(admin.post(presigned["finalize_url"], timeout=30), status)
    assert not object_exists(s3, stack, presigned["key"])


def test_anonymous_presign_and_finalize_are_refused_outside_open_mode(stack, admin):
    base = stack.web_url
    headers = {"Accept": "application/json"}
    assert_json_error(requests.post(f"{base}/api/v1/uploads", json={}, headers=headers, timeout=10), 401)
    finalize_url = presign(admin)["finalize_url"]
    assert_json_error(requests.post(finalize_url, headers=headers, timeout=10), 401)


def test_presign_refuses_a_declared_size_over_the_limit(admin):
    resp = admin.post(f"{admin.base}/api/v1/uploads", json={"size": LIMIT + 1}, timeout=10)
    body = assert_json_error(resp, 400, "invalid")  # the schema's maximum for size
    assert str(LIMIT) in body["error"]["message"]


def test_the_bucket_answers_the_upload_pages_cors_preflight(stack):
    presigned_url = f"{stack.env['AWS_ENDPOINT_URL']}/{stack.env.get('S3_BUCKET', 'imageshare-media')}"
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    ok = requests.options(presigned_url, headers={"Origin": stack.web_url, **asked}, timeout=10)
    assert ok.status_code == 200
    assert ok.headers.get("Access-Control-Allow-Origin") == stack.web_url
    assert "POST" in ok.headers.get("Access-Control-Allow-Methods", "")
    other = requests.options(presigned_url, headers={"Origin": "http://127.0.0.2:9", **asked}, timeout=10)
    assert other.status_code == 403


# --- the upload page: the same path from a browser ------------------------------------------


def test_the_upload_page_sends_the_file_to_s3_not_the_web_tier(page, stack, admin, tmp_path):  # noqa: F811
    from PIL import Image
    from playwright.sync_api import expect

    photo = tmp_path / "direct-in-browser.jpg"
    Image.new("RGB", (1400, 900), (30, 160, 90)).save(photo, quality=90)
    requests_made = []  # every POST the page made
    base, aws = stack.web_url, stack.env["AWS_ENDPOINT_URL"]
    login(page, base, "admin", ADMIN_PASSWORD)
    page.on("requestfinished", lambda r: requests_made.append(r) if r.method == "POST" else None)
    page.get_by_label("Photos").set_input_files(str(photo))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator('#recent img[alt="direct-in-browser.jpg"]')).to_have_count(1, timeout=90_000)
    assert "failed" not in page.locator("#progress").inner_text()
    # (url, body length, type): Chromium does not count a file's bytes in a body's size, hence the type.
    posts = [(r.url, r.sizes()["requestBodySize"], r.header_value("content-type") or "") for r in requests_made]
    to_s3 = [post for post in posts if post[0].startswith(aws)]
    to_web = [post for post in posts if post[0].startswith(base)]
    assert len(to_s3) == 1 and to_s3[0][2].startswith("multipart/form-data"), posts  # the file went to S3 (moto)
    assert [url.split(base, 1)[1].split("/")[-1] for url, _, _ in to_web] == ["uploads", "finalize"], posts
    assert all(n < 1024 and kind.startswith("application/json") for _, n, kind in to_web), posts  # no bytes
    upload_id = to_web[1][0].split("/")[-2]
    image = admin.get(f"{base}/api/v1/images/{upload_id}", timeout=10)
    assert image.json()["bytes"] == photo.stat().st_size and image.json()["status"] == "ready"


def test_a_lost_finalize_fails_its_file_and_the_next_file_still_goes(page, stack, tmp_path):  # noqa: F811
    """The finalize request of the first file never gets an answer (network): that file says so, the next is sent."""
    from PIL import Image
    from playwright.sync_api import expect

    photos = [tmp_path / "lost-finalize.jpg", tmp_path / "after-it.jpg"]
    for n, photo in enumerate(photos):
        Image.new("RGB", (640, 480), (200, 40 * n, 90)).save(photo, quality=90)
    aborted: list[str] = []

    def abort_the_first(route):
        if aborted:
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    login(page, stack.web_url, "admin", ADMIN_PASSWORD)
    page.route("**/finalize", abort_the_first)
    page.get_by_label("Photos").set_input_files([str(photo) for photo in photos])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator('#recent img[alt="after-it.jpg"]')).to_have_count(1, timeout=90_000)
    failed = page.locator("#progress li.error")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("lost-finalize.jpg")
    expect(failed).to_contain_text("could not be finished")
    assert len(aborted) == 1 and aborted[0].endswith("/finalize")


# --- open mode: anonymous direct uploads, versioned public rendition URLs ---------------------


@pytest.mark.ownstack
def test_open_mode_takes_an_anonymous_direct_upload_and_versions_its_public_urls(tmp_path_factory):
    from tests.integration.conftest import own_stack

    options = {"workers": 1, "autoscale": False, "extra_env": {"IMAGESHARE_MODE": "open"}}
    with own_stack(tmp_path_factory, "direct-open", "direct-open-pass-1", **options) as stack:
        anon = requests.Session()
        anon.headers["Accept"] = "application/json"
        anon.base = stack.web_url
        presigned = presign(anon, content_type="image/jpeg")
        assert presigned["key"].startswith("incoming/anonymous/")
        require(send_to_s3(presigned, jpeg_bytes(900, 600)).ok, "POST to S3")
        assert anon.post(presigned["finalize_url"], timeout=30).status_code == 202
        ready = wait_until_not_pending(anon, presigned["upload_id"], timeout=90)
        assert ready["status"] == "ready", ready
        small = ready["urls"]["small"]
        assert small == ready["renditions"]["small"]["url"]
        assert small.startswith(stack.env["AWS_ENDPOINT_URL"]) and "?v=" in small  # public, versioned
        bucket = stack.env.get("S3_BUCKET", "imageshare-media")
        key = f"renditions/{presigned['upload_id']}/small"
        assert small.split("?v=")[0] == f"{stack.env['AWS_ENDPOINT_URL']}/{bucket}/{key}"
        # (The local bucket is private even in open mode, so the public URL itself answers 403 here.)
        s3 = client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL"], region=stack.env["AWS_REGION"])
        assert pixel_size(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == (100, 67)
