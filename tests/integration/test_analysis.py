"""Faces over real HTTP: /api/upload answers with the face counts the analysis worker found.

The shared stack runs a worker of its own on the analysis queue (ops/devstack/stack.py);
nothing here is mocked.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.integration.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.integration
PORTRAIT = Path(__file__).resolve().parents[1] / "support" / "portrait_grace_hopper.jpg"


def landscape_jpeg(width: int = 1600, height: int = 1000) -> bytes:
    """A landscape without people: a sky gradient over textured green hills."""
    rng = np.random.default_rng(7)
    y = np.linspace(0, 1, height)[:, None]
    sky = np.stack([120 + 80 * y, 160 + 60 * y, 230 - 20 * y], axis=-1) * np.ones((1, width, 1))
    hills = (0.6 + 0.08 * np.sin(np.linspace(0, 9, width)))[None, :]
    ground = y > hills
    texture = rng.normal(0, 18, (height, width, 1))
    rgb = np.where(ground[..., None], np.array([60, 120, 40]) + texture, sky)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=88)
    return buf.getvalue()


def seed_upload(base: str, name: str, data: bytes) -> dict:
    resp = requests.post(
        f"{base}/api/upload",
        data={"username": "admin", "password": ADMIN_PASSWORD},
        files={"file": (name, data, "image/jpeg")},
        timeout=60,
    )
    assert resp.status_code == 202, resp.text[:300]
    body = resp.json()
    assert body["success"] is True
    return body["payload"]


def assert_mask_counts(payload: dict) -> None:
    """Integers that add up, or both null with the reason."""
    masked, unmasked = payload["num_masked"], payload["num_unmasked"]
    if masked is None or unmasked is None:
        assert masked is None and unmasked is None and payload["mask_reason"]
    else:
        assert masked + unmasked == payload["num_faces"]


def test_a_portrait_has_a_face_and_a_landscape_none(stack, api):
    portrait = seed_upload(stack.web_url, "portrait.jpg", PORTRAIT.read_bytes())
    assert portrait["num_faces"] >= 1, portrait
    assert_mask_counts(portrait)
    assert {"original", "small", "medium", "large"} <= set(portrait["urls"])  # the seed fields stay
    assert portrait["status_url"].endswith(f"/api/v1/images/{portrait['id']}")

    landscape = seed_upload(stack.web_url, "landscape.jpg", landscape_jpeg())
    assert landscape["num_faces"] == 0, landscape
    assert (landscape["num_masked"], landscape["num_unmasked"]) in ((0, 0), (None, None))

    # The API's image JSON carries the analysis, and the annotated copy is served.
    detail = api.get(portrait["status_url"], timeout=10).json()
    analysis = detail["analysis"]
    assert analysis["status"] == "done" and analysis["num_faces"] == portrait["num_faces"]
    x, y, w, h = analysis["faces"][0]["box"]
    assert 0 <= x < 512 and 0 <= y < 600 and w > 100  # in the original's pixels
    assert analysis["model"]["name"].startswith("opencv-haar") and analysis["model"]["version"]
    annotated = api.get(analysis["annotated_url"], timeout=10)
    assert annotated.status_code == 200 and annotated.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(annotated.content)).size == (512, 600)
