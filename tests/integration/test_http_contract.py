"""Every documented contract, over real HTTP, against the running local stack.

README.md documents each endpoint; these tests drive them with ``requests``
exactly as a client would (gunicorn, moto's S3 and SQS, a real Celery
worker). Behaviour that does not hold today, and whose fix belongs to the
views, the API or the schema, is marked ``xfail(strict=True, raises=AssertionError)`` with what it
answers instead: when the code is fixed, the mark must go.

Most API calls here use the admin's token rather than basic auth: the same
account and rights, without an Argon2 verification per request. Basic auth is
used where the documented example uses it (``POST /``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import ADMIN_PASSWORD, METRICS_TOKEN
from tests.integration.http_support import (
    HTML,
    api_token,
    assert_json_error,
    browser,
    clear_rate_limits,
    create_account,
    csrf_token,
    find_form,
    form_login,
    image_count,
    jpeg_bytes,
    pixel_size,
    require,
    reset_lockouts,
    token_session,
    upload,
    wait_until_not_pending,
)

pytestmark = pytest.mark.integration

ADMIN = ("admin", ADMIN_PASSWORD)
MEMBER = ("contract-member", "member-pass-7241-kestrel")
OVER_LIMIT = 26 * 1024 * 1024  # MAX_UPLOAD_BYTES (25 MiB) + 64 KiB of multipart room, exceeded


@pytest.fixture(scope="module", autouse=True)
def _fresh_limits(stack):
    """Earlier modules' bursts (fuzzers) neither rate-limit nor lock out this one's clients."""
    clear_rate_limits(stack)
    reset_lockouts(stack)


@pytest.fixture(scope="module")
def base(stack) -> str:
    return stack.web_url


@pytest.fixture(scope="module")
def admin(stack, admin_token) -> requests.Session:
    return token_session(stack.web_url, admin_token)


@pytest.fixture(scope="module")
def admin_browser(base) -> requests.Session:
    return form_login(base, *ADMIN)


@pytest.fixture(scope="module")
def member(base, admin_browser) -> tuple[str, str]:
    """A non-staff account, made as staff make them: the /accounts/new form, with its CSRF token."""
    username, password = MEMBER
    create_account(admin_browser, base, username, password)
    return MEMBER


@pytest.fixture(scope="module")
def member_api(base, member) -> requests.Session:
    return token_session(base, api_token(base, *member))


@pytest.fixture(scope="module")
def ready_image(admin) -> dict:
    """A 640×480 JPEG of the admin's, processed by the real worker."""
    image = upload(admin, jpeg_bytes(640, 480))
    body = wait_until_not_pending(admin, image["id"])
    require(body["status"] == "ready", f"the fixture image did not become ready: {body}")
    return body


def _post_root(base, *, auth=ADMIN, accept="application/json", files=None, **kwargs) -> requests.Response:
    """``curl -F image=@photo.jpg -H 'Accept: application/json' -u admin:PASSWORD $BASE/``: no cookies, no CSRF."""
    headers = {"Accept": accept} if accept is not None else {}
    if files is None:
        files = {"image": ("photo.jpg", jpeg_bytes(), "image/jpeg")}
    return requests.post(f"{base}/", auth=auth, headers=headers, files=files, timeout=60, **kwargs)


# --- POST / (seed-compatible) -----------------------------------------------------------


def test_it_accepts_a_documented_upload_on_post_root_without_cookies_or_csrf_token(base, admin):
    resp = _post_root(base)
    assert resp.status_code == 202, f"{resp.status_code} {resp.headers.get('Content-Type')} {resp.text[:200]}"
    body = resp.json()
    assert {"original", "small", "medium", "large", "id", "status"} <= set(body)
    assert body["status"] == "pending"
    for name in ("original", "small", "medium", "large"):
        assert body[name] == f"{base}/i/{body['id']}/{name}"
    assert wait_until_not_pending(admin, body["id"])["status"] == "ready"


def test_it_answers_401_json_to_an_anonymous_upload_on_post_root(base):
    assert_json_error(_post_root(base, auth=None), 401)


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({"other": ("x.txt", b"not the image field", "text/plain")}, id="no-image-field"),
        pytest.param({"image": ("bad.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 20, "image/jpeg")}, id="corrupt-jpeg"),
    ],
)
def test_it_answers_400_json_on_post_root_without_a_valid_image(base, admin, files):
    before = image_count(admin)
    assert_json_error(_post_root(base, files=files), 400)
    assert image_count(admin) == before


def test_it_answers_413_json_on_post_root_over_the_upload_limit(base):
    files = {"image": ("big.jpg", bytes(OVER_LIMIT), "image/jpeg")}
    assert_json_error(_post_root(base, files=files), 413)


def test_it_answers_406_json_on_post_root_when_accept_does_not_allow_json(base):
    assert_json_error(_post_root(base, accept="image/png"), 406)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_it_answers_405_json_to_other_methods_on_root_when_json_is_asked_for(base, method):
    resp = requests.request(
        method, f"{base}/", auth=ADMIN, headers={"Accept": "application/json"}, allow_redirects=False, timeout=30
    )
    assert_json_error(resp, 405)


def test_it_shows_the_home_page_to_a_logged_in_browser(base, admin_browser):
    resp = admin_browser.get(f"{base}/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert 'id="upload-form"' in resp.text and "csrfmiddlewaretoken" in resp.text


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
def test_it_does_not_let_a_session_cookie_alone_upload_on_post_root(base, admin, admin_browser, accept):
    """Cross-site protection: a logged-in browser's cookie, without the page's CSRF token, must not upload."""
    before = image_count(admin)
    resp = admin_browser.post(
        f"{base}/",
        headers={"Accept": accept},
        files={"image": ("photo.jpg", jpeg_bytes(), "image/jpeg")},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code in (401, 403), f"{resp.status_code} {resp.text[:200]}"
    assert image_count(admin) == before


def test_it_refuses_a_cookie_only_post_root_with_a_json_error(base, admin_browser):
    resp = admin_browser.post(
        f"{base}/",
        headers={"Accept": "application/json"},
        files={"image": ("photo.jpg", jpeg_bytes(), "image/jpeg")},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code in (401, 403)
    assert_json_error(resp, resp.status_code)


# --- /api/register and /api/upload (seed-compatible) ------------------------------------------


def test_it_answers_404_json_to_register_while_registration_is_closed(base):
    resp = requests.post(f"{base}/api/register", data={"username": "alice", "password": "a-long-pass"}, timeout=10)
    assert resp.status_code == 404
    body = resp.json()
    assert body["success"] is False and body["error"]["code"] == 404 and body["error"]["message"]


def test_it_accepts_a_seed_upload_with_form_credentials(base, admin):
    resp = requests.post(
        f"{base}/api/upload",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        files={"file": ("photo.jpg", jpeg_bytes(), "image/jpeg")},
        timeout=30,
    )
    assert resp.status_code == 202, resp.text[:300]
    body = resp.json()
    assert body["success"] is True
    payload = body["payload"]
    assert payload["status"] == "pending" and (payload["width"], payload["height"]) == (640, 480)
    assert set(payload["urls"]) >= {"original", "small", "medium", "large"}
    assert wait_until_not_pending(admin, payload["id"])["status"] == "ready"


def test_it_answers_401_to_a_seed_upload_with_a_wrong_password(base, member):
    resp = requests.post(
        f"{base}/api/upload",
        data={"username": member[0], "password": "not-the-password"},
        files={"file": ("photo.jpg", jpeg_bytes(), "image/jpeg")},
        timeout=30,
    )
    assert resp.status_code == 401
    assert resp.json() == {"success": False, "error": {"code": 401, "message": resp.json()["error"]["message"]}}


def test_it_answers_400_to_a_seed_upload_without_a_file(base):
    resp = requests.post(f"{base}/api/upload", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["success"] is False and resp.json()["error"]["code"] == 400


# --- /api/v1 -------------------------------------------------------------------------


def test_it_lists_your_images_filtered_by_status_with_limit_and_offset(admin, ready_image):
    resp = admin.get(f"{admin.base}/api/v1/images", params={"status": "ready", "limit": 1, "offset": 0}, timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["limit"] == 1 and body["offset"] == 0 and body["count"] >= 1
    assert len(body["results"]) == 1 and body["results"][0]["status"] == "ready"
    everything = admin.get(f"{admin.base}/api/v1/images", params={"limit": 100}, timeout=10).json()
    assert ready_image["id"] in [i["id"] for i in everything["results"]]
    created = [i["created_at"] for i in everything["results"]]
    assert created == sorted(created, reverse=True), "newest first"
    if body["count"] > 1:
        second = admin.get(f"{admin.base}/api/v1/images", params={"status": "ready", "limit": 1, "offset": 1}).json()
        assert second["offset"] == 1 and second["results"][0]["id"] != body["results"][0]["id"]


def test_it_answers_400_json_to_an_unknown_status_filter(admin):
    assert_json_error(admin.get(f"{admin.base}/api/v1/images", params={"status": "bogus"}, timeout=10), 400)


def test_it_answers_401_json_to_the_api_without_credentials(base, ready_image):
    assert_json_error(requests.get(f"{base}/api/v1/images", timeout=10), 401)
    assert_json_error(requests.get(f"{base}/api/v1/images/{ready_image['id']}", timeout=10), 401)


def test_it_shows_one_image_with_its_urls_and_renditions(admin, ready_image):
    resp = admin.get(f"{admin.base}/api/v1/images/{ready_image['id']}", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready" and (body["width"], body["height"]) == (640, 480)
    assert body["content_type"] == "image/jpeg" and body["ready_at"]
    assert set(body["urls"]) >= {"original", "small", "medium", "large"}
    sizes = {n: (r["width"], r["height"]) for n, r in body["renditions"].items()}
    assert sizes["small"] == (100, 75) and sizes["medium"] == (300, 225) and sizes["large"] == (600, 450)


def test_it_hides_an_image_from_another_user_with_404(base, ready_image, member, member_api):
    image_id = ready_image["id"]
    assert_json_error(member_api.get(f"{base}/api/v1/images/{image_id}", timeout=10), 404)
    assert_json_error(member_api.get(f"{base}/i/{image_id}/small", allow_redirects=False, timeout=10), 404)
    assert_json_error(member_api.delete(f"{base}/api/v1/images/{image_id}", timeout=10), 404)
    page = form_login(base, *member).get(f"{base}/images/{image_id}", timeout=10)
    assert page.status_code == 404


def test_it_deletes_an_image_with_204_then_answers_404(admin):
    image = upload(admin)
    wait_until_not_pending(admin, image["id"])
    resp = admin.delete(f"{admin.base}/api/v1/images/{image['id']}", timeout=30)
    assert resp.status_code == 204 and not resp.content
    assert_json_error(admin.get(f"{admin.base}/api/v1/images/{image['id']}", timeout=10), 404)
    assert_json_error(admin.get(f"{admin.base}/i/{image['id']}/small", allow_redirects=False, timeout=10), 404)
    assert_json_error(admin.delete(f"{admin.base}/api/v1/images/{image['id']}", timeout=10), 404)


def test_it_makes_a_requested_rendition_202_then_200_with_the_right_pixel_size(admin, ready_image):
    url = f"{admin.base}/api/v1/images/{ready_image['id']}/renditions"
    spec = {"width": 200, "height": 200, "mode": "fill"}
    first = admin.post(url, json=spec, timeout=30)
    assert first.status_code == 202, first.text[:300]
    queued = first.json()
    assert queued["status"] == "pending" and queued["url"] == f"{admin.base}/i/{ready_image['id']}/{queued['name']}"
    detail = f"{admin.base}/api/v1/images/{ready_image['id']}"
    deadline = time.monotonic() + 60  # poll the image: asking again while pending would queue the job again
    while queued["name"] not in admin.get(detail, timeout=10).json()["renditions"]:
        assert time.monotonic() < deadline, f"{queued['name']} was not made within 60 s"
        time.sleep(0.25)
    again = admin.post(url, json=spec, timeout=30)
    assert again.status_code == 200, again.text[:300]
    body = again.json()
    assert body["status"] == "ready" and (body["width"], body["height"]) == (200, 200)
    file = admin.get(body["url"], timeout=30)
    assert file.status_code == 200 and file.headers["Content-Type"] == "image/jpeg"
    assert pixel_size(file.content) == (200, 200)


def test_it_answers_400_json_to_a_rendition_request_out_of_range(admin, ready_image):
    url = f"{admin.base}/api/v1/images/{ready_image['id']}/renditions"
    assert_json_error(admin.post(url, json={"width": 0, "height": 10, "mode": "fit"}, timeout=10), 400)


def test_it_refuses_to_retry_a_ready_image_with_409_not_failed(admin, ready_image):
    resp = admin.post(f"{admin.base}/api/v1/images/{ready_image['id']}/retry", timeout=10)
    assert_json_error(resp, 409, "not_failed")


def test_it_trades_a_username_and_password_for_a_token(base, member, member_api):
    resp = requests.post(f"{base}/api/v1/token", data={"username": member[0], "password": member[1]}, timeout=30)
    assert resp.status_code == 200
    assert resp.json() == {"token": member_api.headers["Authorization"].removeprefix("Token ")}
    wrong = requests.post(f"{base}/api/v1/token", data={"username": member[0], "password": "nope"}, timeout=30)
    assert_json_error(wrong, 401)
    assert_json_error(requests.post(f"{base}/api/v1/token", data={"username": member[0]}, timeout=10), 400)


def _readme_api_routes() -> set[tuple[str, str]]:
    """(path as in the schema, method) of every row of README's API table, e.g. ``GET /api/v1/images/<id>``."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^`?]*)[^`]*` \|", readme, re.M)
    return {(path.replace("<id>", "{image_id}"), method.lower()) for method, path in rows}


def test_it_serves_the_openapi_schema_in_yaml_and_json(base):
    yaml_resp = requests.get(f"{base}/api/v1/schema", timeout=10)
    assert yaml_resp.status_code == 200 and yaml_resp.text.startswith("openapi: 3")
    json_resp = requests.get(f"{base}/api/v1/schema", params={"format": "json"}, timeout=10)
    assert json_resp.status_code == 200 and "json" in json_resp.headers["Content-Type"]
    paths = json_resp.json()["paths"]
    documented = _readme_api_routes() - {("/api/v1/schema", "get")}  # the schema does not describe itself
    assert len(documented) >= 8, documented
    assert documented <= {(p, m) for p, ops in paths.items() for m in ops}


def test_it_shows_your_account_and_its_storage(admin, ready_image):
    resp = admin.get(f"{admin.base}/api/v1/account", timeout=10)
    assert resp.status_code == 200
    body = resp.json()
    assert body["username"] == "admin"
    assert body["storage"]["used_bytes"] >= ready_image["bytes"]
    assert body["storage"]["quota_bytes"] is None or body["storage"]["quota_bytes"] > 0
    assert_json_error(requests.get(f"{admin.base}/api/v1/account", timeout=10), 401)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("{base}/healthz", "forbidden_url"),  # loopback (REMOTE_FETCH_ALLOW_LOOPBACK is off on this stack)
        ("http://169.254.169.254/latest/meta-data/", "forbidden_url"),  # link-local: refused before connecting
        ("ftp://127.0.0.1/cat.jpg", "bad_url"),
    ],
    ids=["loopback", "link-local", "not-http"],
)
def test_it_refuses_a_remote_url_it_must_not_fetch(admin, url, code):
    before = image_count(admin)
    resp = admin.post(f"{admin.base}/api/v1/images", json={"url": url.format(base=admin.base)}, timeout=30)
    assert_json_error(resp, 400, code)
    assert image_count(admin) == before


def test_it_answers_413_json_to_an_api_upload_over_the_limit(admin):
    files = {"image": ("big.jpg", bytes(OVER_LIMIT), "image/jpeg")}
    assert_json_error(admin.post(f"{admin.base}/api/v1/images", files=files, timeout=60), 413, "too_large")


def test_it_answers_415_json_to_an_api_upload_that_is_not_an_image(admin):
    files = {"image": ("notes.txt", b"just some text\n" * 10, "text/plain")}
    assert_json_error(admin.post(f"{admin.base}/api/v1/images", files=files, timeout=30), 415)


def test_it_answers_406_json_to_the_api_when_accept_does_not_allow_json(admin):
    resp = admin.get(f"{admin.base}/api/v1/images", headers={"Accept": "image/png"}, timeout=10)
    assert_json_error(resp, 406)


def test_it_answers_405_json_to_a_wrong_method_on_the_api(admin):
    assert_json_error(admin.put(f"{admin.base}/api/v1/images", json={}, timeout=10), 405)


# --- /i/<id>/<name> ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"), [("original", (640, 480)), ("small", (100, 75)), ("medium", (300, 225)), ("large", (600, 450))]
)
def test_it_serves_each_file_url_as_a_redirect_to_a_jpeg_of_the_right_size(admin, ready_image, name, size):
    url = ready_image["urls"][name]
    assert url == f"{admin.base}/i/{ready_image['id']}/{name}"
    hop = admin.get(url, allow_redirects=False, timeout=10)
    assert hop.status_code == 302 and hop.headers["Cache-Control"] == "private, no-store"
    assert hop.headers["Location"].startswith("http://127.0.0.1:")
    resp = admin.get(url, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert pixel_size(resp.content) == size


def test_it_answers_404_json_for_a_file_that_does_not_exist(admin, ready_image):
    resp = admin.get(f"{admin.base}/i/{ready_image['id']}/9x9-fit", allow_redirects=False, timeout=10)
    assert_json_error(resp, 404)


# --- ops, metrics, health --------------------------------------------------------------


def test_it_shows_the_ops_page_to_staff(base, admin_browser):
    resp = admin_browser.get(f"{base}/ops/", allow_redirects=False, timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")


def test_it_refuses_the_ops_page_to_a_non_staff_user(base, member):
    resp = form_login(base, *member).get(f"{base}/ops/", allow_redirects=False, timeout=10)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/admin/login/")


def test_it_serves_queue_depth_to_staff_only(base, admin, member_api):
    resp = admin.get(f"{base}/ops/queue.json", timeout=30)
    assert resp.status_code == 200
    body = resp.json()
    assert {"work", "dead_letter", "images"} <= set(body)
    assert set(body["work"]) >= {"visible", "in_flight", "delayed"}
    assert_json_error(member_api.get(f"{base}/ops/queue.json", timeout=10), 403)
    assert_json_error(requests.get(f"{base}/ops/queue.json", timeout=10), 401)


def test_it_lets_staff_retry_failed_images_from_the_ops_page(base, admin_browser):
    action, token = find_form(admin_browser.get(f"{base}/ops/", timeout=30), "/ops/retry-failed")
    resp = admin_browser.post(
        action,
        data={"csrfmiddlewaretoken": token},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/ops/"
    without_token = admin_browser.post(action, allow_redirects=False, timeout=10)
    assert without_token.status_code == 403


def test_it_refuses_retry_failed_to_a_non_staff_user(base, member):
    session = form_login(base, *member)
    token = csrf_token(session.get(f"{base}/", timeout=10).text)
    resp = session.post(
        f"{base}/ops/retry-failed", data={"csrfmiddlewaretoken": token}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/admin/login/")


def test_it_serves_metrics_only_with_the_right_bearer_token(base, member_api):
    assert requests.get(f"{base}/metrics", timeout=10).status_code in (401, 403)
    wrong = requests.get(f"{base}/metrics", headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code in (401, 403)
    assert member_api.get(f"{base}/metrics", timeout=10).status_code in (401, 403)
    resp = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE imageshare_images gauge" in resp.text
    assert 'imageshare_images{status="ready"}' in resp.text
    assert "imageshare_sqs_up 1.0" in resp.text


def test_it_answers_healthz_with_200_json(base):
    resp = requests.get(f"{base}/healthz", timeout=10)
    assert resp.status_code == 200 and resp.json() == {"ok": True}


# --- HTML forms: CSRF enforced ---------------------------------------------------------------


def test_it_refuses_the_login_form_without_its_csrf_token(base):
    session = browser(base)
    action, _ = find_form(session.get(f"{base}/login/", timeout=10), 'name="password"')  # the CSRF cookie only
    resp = session.post(
        action, data={"username": "admin", "password": ADMIN_PASSWORD}, allow_redirects=False, timeout=10
    )
    assert resp.status_code == 403
    assert "sessionid" not in session.cookies


def test_it_logs_in_through_the_login_form_with_its_csrf_token(base):
    session = form_login(base, *ADMIN)
    home = session.get(f"{base}/", allow_redirects=False, timeout=10)
    assert home.status_code == 200 and 'id="upload-form"' in home.text


def test_it_refuses_the_home_upload_form_without_its_csrf_token(base, admin, admin_browser):
    before = image_count(admin)
    action, _ = find_form(admin_browser.get(f"{base}/", timeout=10), 'id="upload-form"')
    resp = admin_browser.post(
        action, files={"image": ("photo.jpg", jpeg_bytes(), "image/jpeg")}, allow_redirects=False, timeout=30
    )
    assert resp.status_code == 403
    assert image_count(admin) == before


def test_it_uploads_through_the_home_page_form_with_its_csrf_token(base, admin, admin_browser):
    before = image_count(admin)
    action, token = find_form(admin_browser.get(f"{base}/", timeout=10), 'id="upload-form"')
    resp = admin_browser.post(
        action,
        data={"csrfmiddlewaretoken": token},
        files=[("image", ("one.jpg", jpeg_bytes(), "image/jpeg")), ("image", ("two.jpg", jpeg_bytes(), "image/jpeg"))],
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code == 302 and resp.headers["Location"] == "/", f"{resp.status_code} {resp.text[:300]}"
    assert image_count(admin) == before + 2
    assert "Uploaded one.jpg, two.jpg" in admin_browser.get(f"{base}/", timeout=10).text


def test_it_refuses_the_rendition_form_without_its_csrf_token(base, admin_browser, ready_image):
    action, _ = find_form(admin_browser.get(f"{base}/images/{ready_image['id']}", timeout=10), 'name="width"')
    resp = admin_browser.post(
        action,
        data={"width": 150, "height": 100, "mode": "fit"},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 403


def test_it_queues_a_rendition_through_the_image_page_form(base, admin_browser, ready_image):
    page_url = f"{base}/images/{ready_image['id']}"
    page = admin_browser.get(page_url, timeout=10)
    assert page.status_code == 200
    action, token = find_form(page, 'name="width"')
    resp = admin_browser.post(
        action,
        data={"csrfmiddlewaretoken": token, "width": 150, "height": 100, "mode": "fit"},
        allow_redirects=False,
        timeout=30,
    )
    assert resp.status_code == 302 and resp.headers["Location"] == f"/images/{ready_image['id']}"
    shown = admin_browser.get(page_url, headers={"Accept": HTML}, timeout=10).text
    assert "is on its way" in shown or "is ready" in shown
