"""A person in headless Chromium: log in, upload two photos, see the thumbnails, and a second user sees nothing.

Uses Debian's chromium (``make test`` installs it when missing). A screenshot
of the gallery is kept in test-artifacts/ for a human to look at.
"""

import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.skip("no chromium on this machine")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone's width
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def login(page, base, username, password):
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def test_a_user_uploads_two_photos_and_a_second_user_cannot_see_them(page, stack, tmp_path):
    base = stack.web_url
    photos = []
    for i, colour in enumerate([(200, 40, 40), (40, 90, 200)]):
        path = tmp_path / f"holiday-{i}.jpg"
        Image.new("RGB", (1600, 1000), colour).save(path, quality=90)
        photos.append(str(path))

    login(page, base, "admin", ADMIN_PASSWORD)
    # Staff create the second account through the page made for it.
    page.goto(f"{base}/accounts/new")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password:", exact=True).fill("bob-secret-pass-77")
    page.get_by_label("Password confirmation").fill("bob-secret-pass-77")
    page.get_by_role("button", name="Create account").click()
    page.get_by_text("Created the account bob").wait_for()

    page.goto(f"{base}/")
    page.get_by_label("Photos").set_input_files(photos)
    page.get_by_role("button", name="Upload").click()
    # Both cards turn into thumbnails without a reload.
    from playwright.sync_api import expect

    # (A locator, not wait_for_function: the page's CSP forbids the eval that one needs.)
    thumbs = page.locator('#recent img[alt^="holiday-"]')
    expect(thumbs).to_have_count(2, timeout=90_000)
    assert thumbs.count() == 2
    assert page.locator("#progress li").count() == 2

    page.goto(f"{base}/gallery")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gallery.png"), full_page=True)
    assert page.locator(".gallery img").count() >= 2

    page.locator(".gallery a", has_text="holiday-0.jpg").click()
    page.get_by_text("Status: ready").wait_for()
    captions = page.locator("figcaption").all_inner_texts()
    assert any(c.startswith("large: 600×375") for c in captions), captions
    assert any(c.startswith("small: 100×62") or c.startswith("small: 100×63") for c in captions), captions
    image_url = page.url
    # Every rendition really loaded in the browser.
    page.wait_for_load_state("load")
    loaded = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.src])")
    assert loaded and all(done and width > 0 for _, done, width, _ in loaded), loaded

    page.get_by_role("button", name="Log out admin").click()
    login(page, base, "bob", "bob-secret-pass-77")
    response = page.goto(image_url)
    assert response.status == 404
