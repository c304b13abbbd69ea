"""A staff member in headless Chromium steers the worker pool from the console (/ops/).

Its own stack with the scaling hook on (1 s ticks, 1..3 workers) and, when
redis-server is here, the events channel and Flower (tasks done per worker).
Logs in as staff, waits for the charts, grows the pool by one and sees the
new worker come into service, shrinks it, hands it back to the policy, and
checks that a user who is not staff gets no console. The screenshot
(test-artifacts/console.png) is for a person to look at.
"""

import io
import shutil
import sqlite3
from pathlib import Path

import pytest
import requests
from PIL import Image as PILImage

from tests.integration.conftest import ADMIN_PASSWORD, own_stack, wait_for_status
from tests.integration.test_browser import login

# Its own stack, on SQLite whatever DATABASE_URL says: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.ownstack]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory):
    scaling = {"SCALING_MIN_WORKERS": "1", "SCALING_MAX_WORKERS": "3", "SCALING_INTERVAL_SECONDS": "1"}
    with own_stack(tmp_path_factory, "console", ADMIN_PASSWORD, concurrency=1, autoscale=True, extra_env=scaling) as s:
        yield s


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def upload_some(base, n=6) -> None:
    """A few uploads, so the charts have tasks, uploads and upload-to-ready times to draw."""
    api = requests.Session()
    api.auth = ("admin", ADMIN_PASSWORD)
    api.headers["Accept"] = "application/json"
    api.base = base
    ids = []
    for i in range(n):
        buf = io.BytesIO()
        PILImage.new("RGB", (1200, 800), (30 * i, 90, 160)).save(buf, "JPEG", quality=90)
        r = api.post(f"{base}/api/v1/images", files={"image": (f"p{i}.jpg", buf.getvalue())}, timeout=30)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    for image_id in ids:
        assert wait_for_status(api, image_id, timeout=120)["status"] == "ready"


def test_staff_steer_the_pool_from_the_console_and_others_get_none(page, console_stack):
    from playwright.sync_api import expect

    base = console_stack.web_url
    upload_some(base)  # the hook starts the minimum pool (one worker) on its first tick
    login(page, base, "admin", ADMIN_PASSWORD)
    page.goto(f"{base}/ops/")

    # The charts are drawn from /ops/metrics.json, and the pool is live.
    expect(page.locator("#charts")).to_have_attribute("data-ready", "true", timeout=30_000)
    expect(page.locator("[data-chart] svg polyline, [data-chart] svg circle").first).to_be_attached()
    workers = page.locator("#workers-body tr")
    expect(workers.filter(has_text="in service")).to_have_count(1, timeout=60_000)
    expect(page.locator("#mode-word")).to_have_text("Automatic")
    expect(page.locator('[data-chart="tasks"] .legend')).not_to_contain_text("images ready –")

    # +1: manual mode, and the hook starts a second worker; the page shows it come into service.
    page.get_by_role("button", name="+1 worker").click()
    expect(page.get_by_text("Manual mode: the pool goes from 1 to 2")).to_be_visible()
    expect(page.locator("#mode-word")).to_have_text("Manual")
    expect(workers.filter(has_text="in service")).to_have_count(2, timeout=90_000)
    expect(page.locator('.tile [data-live="pool.running"]')).to_have_text("2")
    upload_some(base)  # work for both workers: the tasks-done column and the charts move
    page.reload()
    expect(page.locator("#charts")).to_have_attribute("data-ready", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    # -1: the newest worker drains and goes.
    page.get_by_role("button", name="−1 worker").click()
    expect(page.get_by_text("Manual mode: the pool goes from 2 to 1")).to_be_visible()
    expect(workers).to_have_count(1, timeout=90_000)
    expect(workers.filter(has_text="in service")).to_have_count(1)

    # Back to automatic: the policy sizes the pool again.
    page.get_by_role("button", name="Back to automatic").click()
    expect(page.locator("#mode-word")).to_have_text("Automatic")
    audit = page.locator("table.audit tbody")
    for what in ("grow", "shrink", "automatic"):
        expect(audit.locator("tr", has_text=what).filter(has_text="admin")).to_have_count(1)

    # The hook recorded the operator's changes as such.
    db = sqlite3.connect(console_stack.var_dir / "stack.sqlite3")
    reasons = [r for (r,) in db.execute("select reason from ops_scalingdecision where action in ('out', 'in')")]
    assert any(r.startswith("manual: an operator asked for 2") for r in reasons), reasons
    assert any(r.startswith("manual: an operator asked for 1") for r in reasons), reasons

    # A user who is not staff gets no console, and no console data.
    page.goto(f"{base}/accounts/new")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password:", exact=True).fill("carol-secret-pass-77")
    page.get_by_label("Password confirmation").fill("carol-secret-pass-77")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("Created the account carol").wait_for()
    page.get_by_role("button", name="Log out admin").click()
    login(page, base, "carol", "carol-secret-pass-77")
    expect(page.get_by_role("link", name="Ops")).to_have_count(0)
    page.goto(f"{base}/ops/")
    assert "/admin/login/" in page.url  # staff_member_required sends others to the admin's login
    expect(page.locator("#console")).to_have_count(0)
    resp = page.request.get(f"{base}/ops/metrics.json")
    assert resp.status == 403
    resp = page.request.post(f"{base}/ops/pool/grow", max_redirects=0)
    assert resp.status in (302, 403)
    assert db.execute("select count(*) from ops_auditentry where username = 'carol'").fetchone() == (0,)
