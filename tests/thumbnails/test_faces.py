"""The faces processor (pure): the cascades find the test portrait's face and nothing in faceless images;
the mask verdict is carried through, and unknown stays unknown."""

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from tests.support.images import make_image
from thumbnails import processors
from thumbnails.processors import faces


class Verdict(NamedTuple):
    """A mask classifier's answer, as thumbnails/processors/masks.py's MaskResult carries it."""

    masked: list[bool] | None
    reason: str | None
    model: str
    version: str


PORTRAIT = Path(__file__).resolve().parents[1] / "support" / "portrait_grace_hopper.jpg"


def portrait_rgb() -> np.ndarray:
    return processors.decode(PORTRAIT.read_bytes()).rgb


def test_it_finds_the_one_face_of_the_portrait():
    result = faces.FaceProcessor().analyse(portrait_rgb())
    assert result.name == "faces" and result.model == faces.MODEL and result.version
    assert result.data["num_faces"] == 1
    x, y, w, h = result.data["faces"][0]["box"]
    # The face of the 512x600 portrait: about 230 px wide, centred around (265, 215).
    assert 180 <= w <= 280 and abs(x + w / 2 - 265) < 40 and abs(y + h / 2 - 215) < 40


def textured(seed: int) -> np.ndarray:
    """Smooth random texture (no face in it): low-frequency noise upscaled, like foliage or clouds."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return np.kron(small, np.ones((20, 20, 1), dtype=np.uint8))


@pytest.mark.parametrize("rgb", [np.full((480, 640, 3), 128, np.uint8), textured(1), textured(2)])
def test_it_finds_no_face_where_there_is_none(rgb):
    assert faces.FaceProcessor().analyse(rgb).data["num_faces"] == 0


def test_without_a_mask_classifier_the_counts_stay_unknown_with_the_reason(monkeypatch):
    monkeypatch.setattr(faces, "mask_classifier", lambda: lambda crops: faces.NoMasks())
    data = faces.FaceProcessor().analyse(portrait_rgb()).data
    assert data["num_faces"] == 1
    assert data["num_masked"] is None and data["num_unmasked"] is None
    assert data["mask_reason"] == "no mask classifier installed"
    assert data["faces"][0]["masked"] is None


@pytest.mark.parametrize("flag", [True, False])
def test_a_classifier_verdict_gives_the_counts(monkeypatch, flag):
    seen = []

    def classify(crops):
        seen.extend(crops)
        return Verdict([flag] * len(crops), None, "test-model", "1")

    monkeypatch.setattr(faces, "mask_classifier", lambda: classify)
    data = faces.FaceProcessor().analyse(portrait_rgb()).data
    assert len(seen) == 1 and seen[0].ndim == 3 and seen[0].shape[2] == 3
    assert (data["num_masked"], data["num_unmasked"]) == ((1, 0) if flag else (0, 1))
    assert data["num_masked"] + data["num_unmasked"] == data["num_faces"]
    assert data["mask_reason"] is None and data["mask_model"] == "test-model"


def test_a_classifier_that_skips_a_face_is_not_believed(monkeypatch):
    monkeypatch.setattr(faces, "mask_classifier", lambda: lambda crops: Verdict([], None, "partial", "1"))
    data = faces.FaceProcessor().analyse(portrait_rgb()).data
    assert data["num_masked"] is None and "answered 0 of 1" in data["mask_reason"]


def test_the_annotated_copy_draws_green_for_masked_and_red_for_unmasked():
    import io

    from PIL import Image

    rgb = np.full((200, 300, 3), 255, np.uint8)
    boxes = [{"box": [10, 10, 80, 80], "masked": True}, {"box": [150, 50, 80, 80], "masked": False}]
    im = Image.open(io.BytesIO(faces.annotate(rgb, boxes))).convert("RGB")
    assert im.size == (300, 200)
    g, r = im.getpixel((11, 50)), im.getpixel((151, 90))
    assert g[1] > 150 and g[0] < 90 and g[2] < 90
    assert r[0] > 150 and r[1] < 90 and r[2] < 90


def test_decode_shrinks_to_the_analysis_size_upright():
    decoded = processors.decode(make_image(3000, 1500), max_side=1024)
    assert decoded.rgb.shape == (512, 1024, 3) and decoded.scale == pytest.approx(3000 / 1024)
