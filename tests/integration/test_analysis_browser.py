"""A person in headless Chromium uploads a portrait and a photo without people, then sees the faces
on the image pages and the history's lists (Debian's chromium, like test_browser.py)."""

import io
import time

import pytest

from tests.integration.conftest import ADMIN_PASSWORD
from tests.integration.test_analysis import PORTRAIT, landscape_jpeg
from tests.integration.test_browser import ARTIFACTS, login, page  # noqa: F401 (the page fixture)

pytestmark = pytest.mark.integration


def reload_until(page, text: str, timeout: float = 60) -> None:  # noqa: F811
    """The analysis arrives after the upload: reload (bounded) until the page says ``text``."""
    deadline = time.monotonic() + timeout
    while page.get_by_text(text).count() == 0:
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACTS / "faces-timeout.png"), full_page=True)
            raise AssertionError(f"{text!r} not on {page.url} after {timeout}s: {page.locator('main').inner_text()}")
        time.sleep(0.5)
        page.reload()


def test_the_pages_show_the_faces_and_the_lists(page, stack, tmp_path):  # noqa: F811
    from PIL import Image

    base = stack.web_url
    portrait = tmp_path / "face-portrait.jpg"
    portrait.write_bytes(PORTRAIT.read_bytes())
    landscape = tmp_path / "face-landscape.jpg"
    Image.open(io.BytesIO(landscape_jpeg())).save(landscape)

    login(page, base, "admin", ADMIN_PASSWORD)
    page.goto(f"{base}/")
    page.get_by_label("Photos").set_input_files([str(portrait), str(landscape)])
    page.get_by_role("button", name="Upload").click()
    # The page uploads in the background: stay until both have thumbnails.
    from playwright.sync_api import expect

    expect(page.locator('#recent img[alt^="face-"]')).to_have_count(2, timeout=90_000)

    page.goto(f"{base}/gallery")
    reload_until(page, "face-landscape.jpg: 0 faces")
    reload_until(page, "face-portrait.jpg: 1 face")
    no_faces = page.locator('[data-group="no-faces"]')
    assert "face-landscape.jpg" in no_faces.inner_text()
    # Without a mask classifier the portrait is under "masks not known"; with one, in a mask list.
    face_lists = ["masks-unknown", "none-masked", "all-masked", "some-masked"]
    assert any("face-portrait.jpg" in page.locator(f'[data-group="{g}"]').inner_text() for g in face_lists)
    assert "face-portrait.jpg" not in no_faces.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "faces-history.png"), full_page=True)

    page.locator('[data-group="no-faces"] a', has_text="face-landscape.jpg").first.click()
    page.get_by_text("Faces found: 0").wait_for()

    page.goto(f"{base}/gallery")
    page.locator("#faces a", has_text="face-portrait.jpg").first.click()
    page.get_by_text("Faces found: 1").wait_for()
    masks_line = page.locator(".masks-count").inner_text()
    assert masks_line.startswith(("Masks: not known", "Wearing a mask:")), masks_line
    annotated = page.locator("img.annotated")
    annotated.wait_for()
    page.wait_for_load_state("load")
    assert annotated.evaluate("i => i.complete && i.naturalWidth") == 512
    page.screenshot(path=str(ARTIFACTS / "faces-image.png"), full_page=True)
