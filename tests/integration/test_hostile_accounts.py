"""One hostile account cannot hurt anyone else: each finding of the adversarial review, over real HTTP.

Its own stack: a load balancer is modelled (TRUSTED_PROXY_COUNT=1, and every
request carries the X-Forwarded-For the balancer would append), so that the
attacker and the victims have different addresses, as they do in production;
registration is open and the per-address limits are small, so the doors'
limits show within a few requests. Accounts A (attacker), B and C (victims).
"""

from __future__ import annotations

import io
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
from PIL import Image

from ops.devstack.stack import Stack
from tests.integration.conftest import own_stack

# Its own stack, on SQLite whatever DATABASE_URL says: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.ownstack]

PASSWORD = "hostile-test-pass-1"
ATTACKER, VICTIM = "203.0.113.66", "198.51.100.7"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    limits = {
        "TRUSTED_PROXY_COUNT": "1",
        "OPEN_REGISTRATION": "true",
        "REGISTRATIONS_PER_ADDRESS": "5/h",
        "LOGIN_FAILURES_PER_ADDRESS": "20/h",
        "PASSWORD_RESETS_PER_ADDRESS": "3/h",
        "API_RATE_ANON": "40/min",
        "API_RATE_UPLOADS": "60/min",
    }
    with own_stack(
        tmp_path_factory, "hostile", PASSWORD, workers=1, concurrency=2, autoscale=False, events=False, extra_env=limits
    ) as stack:
        code = (
            "from django.contrib.auth.models import User\n"
            "for name in ('alice', 'bob', 'carol'):\n"
            f"    User.objects.create_user(name, name + '@example.com', {PASSWORD!r})\n"
        )
        stack._manage("shell", "-c", code)
        yield stack


def session(user: str | None, address: str) -> requests.Session:
    """A client behind the load balancer: the balancer appends the address it saw to X-Forwarded-For."""
    s = requests.Session()
    if user:
        s.auth = (user, PASSWORD)
    s.headers.update({"Accept": "application/json", "X-Forwarded-For": address})
    return s


def png(width: int, height: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    im = Image.frombytes("RGBA", (width, height), rng.randbytes(width * height * 4))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def upload(s: requests.Session, base: str, data: bytes, name: str = "a.png") -> str:
    resp = s.post(f"{base}/api/v1/images", files={"image": (name, data)}, timeout=60)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def wait_ready(s: requests.Session, base: str, image_id: str, timeout: float) -> float:
    """Seconds until the image is ready (bounded); fails on 'failed' or the bound."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        body = s.get(f"{base}/api/v1/images/{image_id}", timeout=10).json()
        assert body["status"] != "failed", body
        if body["status"] == "ready":
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{image_id} not ready after {timeout}s")


def s3_keys(stack: Stack, prefix: str) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = stack.env.get("S3_BUCKET", "imageshare-media")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_1_a_flood_of_huge_sizes_is_bounded_and_does_not_delay_another_users_upload(hostile):
    base = hostile.web_url
    a, b = session("alice", ATTACKER), session("bob", VICTIM)
    image_id = upload(a, base, png(256, 256))
    wait_ready(a, base, image_id, 60)

    def ask(i: int) -> int:
        body = {"width": 4096, "height": 4096 - i, "mode": "fill"}
        return a.post(f"{base}/api/v1/images/{image_id}/renditions", json=body, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(ask, range(150)))
    assert statuses.count(202) <= 20 and statuses.count(429) >= 130, statuses
    # B's upload, right after the flood, is not stuck behind it.
    assert wait_ready(b, base, upload(b, base, png(8, 8, seed=1)), 30) <= 5.0
    # Nothing stored is larger than the original: fill never enlarges.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        renditions = a.get(f"{base}/api/v1/images/{image_id}", timeout=10).json()["renditions"]
        if sum(1 for n in renditions if "fill" in n) >= statuses.count(202):
            break
        time.sleep(0.5)
    fills = {n: r for n, r in renditions.items() if "fill" in n}
    assert fills and all(r["width"] <= 256 and r["height"] <= 256 for r in fills.values())


def test_2_deleting_an_image_mid_processing_leaves_no_object(hostile):
    base = hostile.web_url
    a = session("alice", ATTACKER)
    rng = random.Random(2)
    im = Image.frombytes("RGB", (3000, 2000), rng.randbytes(3000 * 2000 * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    image_id = upload(a, base, buf.getvalue(), "big.jpg")
    time.sleep(0.3)  # the worker has it now
    assert a.delete(f"{base}/api/v1/images/{image_id}", timeout=30).status_code == 204
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = s3_keys(hostile, f"renditions/{image_id}/") + s3_keys(hostile, f"originals/{image_id}")
        if not left:
            break
        time.sleep(1)
    assert left == []


def test_3_a_forged_forwarded_for_does_not_dodge_the_token_rate_limit(hostile):
    base = hostile.web_url
    statuses = []
    for i in range(50):
        # The attacker forges the first entry; the balancer appends the address it really saw.
        headers = {"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.99"}
        resp = requests.post(f"{base}/api/v1/token", data={"username": f"nobody{i}", "password": "x"}, headers=headers)
        statuses.append(resp.status_code)
    assert 429 in statuses and set(statuses) <= {401, 429}


def test_4_every_door_answers_429_past_its_share(hostile):
    base = hostile.web_url
    guesser = session(None, "203.0.113.41")
    guesses = [
        guesser.post(
            f"{base}/api/upload", data={"username": "carol", "password": f"guess{i}"}, files={"file": ("a.png", b"x")}
        ).status_code
        for i in range(25)
    ]
    assert guesses[-1] == 429 and 401 in guesses
    registrar = session(None, "203.0.113.42")
    made = [
        registrar.post(f"{base}/api/register", data={"username": f"bot{i}", "password": "a-long-pass-9876"}).status_code
        for i in range(7)
    ]
    assert made[:5] == [201] * 5 and made[5:] == [429, 429]
    resetter = session(None, "203.0.113.43")
    resetter.headers["Accept"] = "text/html"
    form = resetter.get(f"{base}/accounts/reset/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    resets = [
        resetter.post(
            f"{base}/accounts/reset/",
            data={"email": "carol@example.com", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/accounts/reset/"},
            allow_redirects=False,
        ).status_code
        for _ in range(5)
    ]
    assert resets == [302, 302, 302, 429, 429]


def test_5_a_stranger_cannot_lock_the_owner_out(hostile):
    base = hostile.web_url
    stranger = session(None, ATTACKER)
    for i in range(6):
        stranger.post(
            f"{base}/api/upload", data={"username": "carol", "password": f"wrong{i}"}, files={"file": ("a", b"")}
        )

    def owner_uploads() -> requests.Response:
        return requests.post(
            f"{base}/api/upload",
            data={"username": "carol", "password": PASSWORD},
            files={"file": ("c.png", png(16, 16, seed=5))},
            headers={"X-Forwarded-For": VICTIM},
        )

    owner = owner_uploads()
    if owner.status_code == 429:
        # Carol was guessed at from many addresses (test 4 and here): every check of her
        # account waits its turn, hers too, for a few seconds; never a lock.
        wait = int(owner.headers["Retry-After"])
        assert wait <= 10, owner.headers
        time.sleep(wait + 0.5)
        owner = owner_uploads()
    assert owner.status_code == 202, owner.text


def test_7_smaller_findings(hostile):
    base = hostile.web_url
    a = session("alice", ATTACKER)
    for address in ("64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"):
        resp = a.post(f"{base}/api/v1/images", json={"url": f"http://[{address}]/x.jpg"}, timeout=30)
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "forbidden_url", (address, resp.text)
    page = requests.get(f"{base}/login/", headers={"X-Forwarded-For": VICTIM})
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    files = [("image", (f"{i}.png", b"x")) for i in range(1000)]
    resp = a.post(f"{base}/api/v1/images", files=files, timeout=60)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "bad_request"
