"""Faces: where they are (OpenCV's Haar cascades) and whether each wears a mask (``masks.classify``).

The model ships inside the ``opencv-python-headless`` wheel
(``cv2.data.haarcascades``): nothing is downloaded at run time. The cascades
are loaded once per process, on first use (``_cascades``).

Tuned for precision on real photographs (docs/analysis.md has the corpus
figures): a candidate from the ``alt2`` cascade (5 neighbours, at least 5%
of the short side) counts only if the ``default`` cascade also finds a face
over the same place. Either alone finds "faces" in bark, leaves and clouds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

from thumbnails import engine
from thumbnails.processors import ProcessorResult

PRIMARY = "haarcascade_frontalface_alt2.xml"
CONFIRM = "haarcascade_frontalface_default.xml"
MODEL = "opencv-haar:frontalface_alt2+default"

# Box colours on the annotated copy: masked, unmasked, not classified.
GREEN = (0, 200, 0)
RED = (220, 0, 0)
AMBER = (255, 176, 0)


@dataclass(frozen=True)
class Params:
    scale_factor: float = 1.1
    min_neighbors: int = 5  # the primary cascade's; 3 lets bark and leaves through (corpus)
    min_size_fraction: float = 0.05  # of the short side; and never below MIN_FACE_PX
    confirm_neighbors: int = 3
    confirm_margin: float = 0.25  # the confirming cascade looks this much beyond the box, each side
    confirm_iou: float = 0.3


# Where the wheel keeps its cascades (cv2.data is a plain module the stubs do not list).
HAAR_DIR: str = cv2.data.haarcascades  # type: ignore[attr-defined]

MIN_FACE_PX = 24  # the cascades' own window is 20-24 px

_lock = threading.Lock()
_loaded: dict[str, cv2.CascadeClassifier] = {}


def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    """The two cascades, loaded once per process (a worker child loads them on its first image)."""
    with _lock:
        if not _loaded:
            # One thread: the worker's concurrency is the parallelism (images/s/core in bench/analysis.py).
            cv2.setNumThreads(1)
        for name in (PRIMARY, CONFIRM):
            if name not in _loaded:
                cascade = cv2.CascadeClassifier(HAAR_DIR + name)
                if cascade.empty():
                    raise RuntimeError(f"the cascade {name} did not load from {HAAR_DIR}")
                _loaded[name] = cascade
        return _loaded[PRIMARY], _loaded[CONFIRM]


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def detect(gray: np.ndarray, params: Params = Params()) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in ``gray``'s pixels: the primary cascade's, each confirmed by the second."""
    primary, confirm = _cascades()
    side = max(MIN_FACE_PX, int(min(gray.shape[:2]) * params.min_size_fraction))
    found = primary.detectMultiScale(
        gray, scaleFactor=params.scale_factor, minNeighbors=params.min_neighbors, minSize=(side, side)
    )
    boxes = []
    height, width = gray.shape[:2]
    for x, y, w, h in (tuple(int(v) for v in f) for f in found):
        m = int(max(w, h) * params.confirm_margin)
        x0, y0 = max(0, x - m), max(0, y - m)
        x1, y1 = min(width, x + w + m), min(height, y + h + m)
        near = confirm.detectMultiScale(
            gray[y0:y1, x0:x1],
            scaleFactor=params.scale_factor,
            minNeighbors=params.confirm_neighbors,
            minSize=(max(MIN_FACE_PX, w // 2), max(MIN_FACE_PX, h // 2)),
        )
        if any(_iou((x, y, w, h), (int(cx) + x0, int(cy) + y0, int(cw), int(ch))) >= params.confirm_iou
               for cx, cy, cw, ch in near):  # fmt: skip
            boxes.append((x, y, w, h))
    return sorted(boxes)


@dataclass(frozen=True)
class NoMasks:
    """The verdict when thumbnails/processors/masks.py is absent: unknown, never guessed."""

    masked: None = None
    reason: str = "no mask classifier installed"
    model: str = "none"
    version: str = "0"


def mask_classifier() -> Callable[[list[np.ndarray]], Any]:
    """``masks.classify`` (crops -> MaskResult: masked, reason, model, version), or NoMasks without it."""
    try:
        from thumbnails.processors import masks
    except ImportError:
        return lambda crops: NoMasks()
    return masks.classify


class FaceProcessor:
    """Faces, each with its box (in the analysed image's pixels) and masked flag (None: not classified)."""

    name = "faces"
    version = cv2.__version__

    def __init__(self, params: Params = Params()):
        self.params = params

    def analyse(self, image_rgb: np.ndarray) -> ProcessorResult:
        t0 = time.perf_counter()
        gray = cv2.equalizeHist(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY))
        boxes = detect(gray, self.params)
        t1 = time.perf_counter()
        crops = [np.ascontiguousarray(image_rgb[y : y + h, x : x + w]) for x, y, w, h in boxes]
        verdict = mask_classifier()(crops)
        t2 = time.perf_counter()
        flags: list[bool | None] = list(verdict.masked) if verdict.masked is not None else [None] * len(boxes)
        reason: str | None
        if len(flags) != len(boxes):  # a classifier that answers for some faces only is not believed
            flags, reason = [None] * len(boxes), f"the mask classifier answered {len(flags)} of {len(boxes)} faces"
        else:
            reason = verdict.reason if verdict.masked is None else None
        known = verdict.masked is not None and reason is None
        data: dict[str, Any] = {
            "faces": [{"box": list(b), "masked": f} for b, f in zip(boxes, flags, strict=True)],
            "num_faces": len(boxes),
            "num_masked": sum(1 for f in flags if f is True) if known else None,
            "num_unmasked": sum(1 for f in flags if f is False) if known else None,
            "mask_reason": reason,
            "mask_model": verdict.model,
            "mask_version": verdict.version,
        }
        timings = {"detect": (t1 - t0) * 1000, "classify": (t2 - t1) * 1000}
        return ProcessorResult(name=self.name, model=MODEL, version=self.version, data=data, timings=timings)


def annotate(image_rgb: np.ndarray, faces: list[dict[str, Any]], jpeg_quality: int = 85) -> bytes:
    """A JPEG of the analysed image with a box per face: green masked, red unmasked, amber not classified."""
    im = Image.fromarray(image_rgb, "RGB")
    draw = ImageDraw.Draw(im)
    line = max(2, round(max(im.size) / 300))
    for face in faces:
        x, y, w, h = face["box"]
        colour = {True: GREEN, False: RED}.get(face["masked"], AMBER)
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=line)
    return engine._encode(im, "JPEG", jpeg_quality)
