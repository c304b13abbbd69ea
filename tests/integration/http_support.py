"""Small helpers for the real-HTTP contract tests: sessions, forms, images, polling.

Everything here talks to the local stack on 127.0.0.1 only. A helper whose
precondition fails (the stack does not answer as a fixture needs) raises
``StackProblem``, not ``AssertionError``: the expected-failure marks say
``raises=AssertionError``, so a broken stack is never taken for a known
contract failure.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from urllib.parse import urljoin

import requests
from PIL import Image, ImageDraw

HTML = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"  # what a browser sends
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')
_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)


class StackProblem(Exception):
    """A test's precondition failed: the stack or a fixture, not the contract under test."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise StackProblem(message)


def jpeg_bytes(width: int = 640, height: int = 480) -> bytes:
    """A real photo-like JPEG (some shapes, not one flat colour)."""
    img = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width // 8, height // 8, width // 2, height // 2), fill=(230, 200, 40))
    draw.rectangle((width // 2, height // 2, width - 10, height - 10), fill=(200, 40, 60))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def pixel_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def csrf_token(html: str) -> str:
    """The csrfmiddlewaretoken of the first form on a page."""
    match = _CSRF_INPUT.search(html)
    require(match, "no csrfmiddlewaretoken on the page")
    return match.group(1)


def find_form(page: requests.Response, containing: str) -> tuple[str, str]:
    """(absolute URL the form posts to, its CSRF token) of the first form whose HTML contains ``containing``."""
    for match in _FORM.finditer(page.text):
        attrs, inner = match.groups()
        if containing in attrs or containing in inner:
            action = re.search(r'\baction="([^"]*)"', attrs)
            return urljoin(page.url, action.group(1) if action else page.url), csrf_token(inner)
    raise StackProblem(f"no form containing {containing!r} on {page.url}")


def browser(base: str) -> requests.Session:
    """A session that looks like a browser: it asks for HTML, keeps cookies, sends no credentials."""
    session = requests.Session()
    session.headers["Accept"] = HTML
    session.base = base
    return session


def form_login(base: str, username: str, password: str) -> requests.Session:
    """Log in through the HTML login form (GET it, POST it with its CSRF token); return the session."""
    session = browser(base)
    page = session.get(f"{base}/login/", timeout=10)
    require(page.status_code == 200, f"GET /login/: {page.status_code}")
    action, token = find_form(page, 'name="password"')
    resp = session.post(
        action,
        data={"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/"},
        allow_redirects=False,
        timeout=30,
    )
    require(resp.status_code == 302, f"login as {username}: {resp.status_code} {resp.text[:300]}")
    require("sessionid" in session.cookies, f"login as {username}: no session cookie")
    return session


def create_account(staff: requests.Session, base: str, username: str, password: str) -> None:
    """Create an account through the staff page's form (with its CSRF token), as an operator would."""
    action, token = find_form(staff.get(f"{base}/accounts/new", timeout=10), 'name="password1"')
    resp = staff.post(
        action,
        data={
            "csrfmiddlewaretoken": token,
            "username": username,
            "email": "",
            "password1": password,
            "password2": password,
        },
        allow_redirects=False,
        timeout=30,
    )
    require(resp.status_code == 302, f"creating {username}: {resp.status_code} {resp.text[:500]}")


def api_token(base: str, username: str, password: str) -> str:
    resp = requests.post(f"{base}/api/v1/token", data={"username": username, "password": password}, timeout=30)
    require(resp.status_code == 200, f"POST /api/v1/token: {resp.status_code} {resp.text[:300]}")
    return resp.json()["token"]


def token_session(base: str, token: str) -> requests.Session:
    """An API client with a token: as good as basic auth, without an Argon2 hash per request."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
    session.base = base
    return session


def upload(api: requests.Session, data: bytes | None = None, name: str = "photo.jpg") -> dict:
    resp = api.post(
        f"{api.base}/api/v1/images", files={"image": (name, data or jpeg_bytes(), "image/jpeg")}, timeout=30
    )
    require(resp.status_code == 202, f"POST /api/v1/images: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def wait_until_not_pending(api: requests.Session, image_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"{api.base}/api/v1/images/{image_id}", timeout=10).json()
        if body["status"] != "pending":
            return body
        time.sleep(0.2)
    raise StackProblem(f"image {image_id} still pending after {timeout}s")


def image_count(api: requests.Session) -> int:
    resp = api.get(f"{api.base}/api/v1/images", params={"limit": 1}, timeout=10)
    require(resp.status_code == 200, f"GET /api/v1/images: {resp.status_code}")
    return resp.json()["count"]


def assert_json_error(resp: requests.Response, status: int, code: str | None = None) -> dict:
    """``resp`` is the documented error: that status and ``{"error": {"code", "message"}}``."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:300]}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers.get("Content-Type")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def clear_rate_limits(stack) -> None:
    """Forget every rate-limit window the web tier counted (its file cache under the stack's var dir).

    The integration modules share one stack and one address: a fuzzer's burst
    (hundreds of requests a minute as admin and as anonymous) would otherwise
    answer 429 to the next module's first requests.
    """
    for entry in (stack.var_dir / "cache").glob("*.djcache"):
        entry.unlink(missing_ok=True)


def reset_lockouts(stack) -> None:
    """Forget django-axes' failed logins and lock-outs (``manage.py axes_reset`` on the stack's database).

    A fuzzer tries common usernames, ``admin`` among them, with made-up
    passwords on ``POST /api/v1/token``: five of those lock admin out of the
    shared stack (all tests come from 127.0.0.1) for LOGIN_COOLOFF_MINUTES.
    """
    from ops.devstack.stack import ROOT

    done = subprocess.run(
        [sys.executable, "manage.py", "axes_reset"], cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60
    )
    require(done.returncode == 0, f"manage.py axes_reset: {done.stderr[-2000:]}")
