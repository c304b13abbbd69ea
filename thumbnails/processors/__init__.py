"""Processors: what the analysis stage runs on an image beside the resize (faces now; a classifier could follow).

Pure like ``thumbnails.engine``: pixels in, plain results out; no I/O, no
Django, no Celery. ``thumbnails.analysis`` (the thin task) fetches the
original, decodes it here with the engine's own decode steps, runs each
processor and stores what they return.

A processor has a ``name``, a ``version`` and ``analyse(image_rgb)``, which
takes an upright RGB array (height x width x 3, uint8) and returns a
``ProcessorResult``: its model and version, how long it took, and its
findings as a JSON-ready dict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from thumbnails import engine

# The long side the analysis decodes to: enough for faces of about 24 px in a
# 1024 px frame (2% of the long side), and a quarter of the work of 2048.
ANALYSIS_MAX_SIDE = 1024


@dataclass(frozen=True)
class ProcessorResult:
    name: str  # the processor's name, e.g. "faces"
    model: str  # what it ran, e.g. "opencv-haar:frontalface_default+alt2"
    version: str  # the model's version, e.g. the OpenCV version that ships it
    data: dict[str, Any]  # its findings, JSON-ready
    timings: dict[str, float] = field(default_factory=dict)  # stage -> ms


class Processor(Protocol):
    name: str
    version: str

    def analyse(self, image_rgb: np.ndarray) -> ProcessorResult: ...


@dataclass(frozen=True)
class Decoded:
    """An image decoded for analysis: upright RGB pixels, and the factor back to the original's size."""

    rgb: np.ndarray
    source: engine.Probe
    scale: float  # original (upright) pixels per analysed pixel, >= 1
    ms: float


def decode(data: bytes, *, max_side: int = ANALYSIS_MAX_SIDE, max_pixels: int = 50_000_000) -> Decoded:
    """Decode ``data`` upright to RGB, its long side at most ``max_side``, with the engine's steps.

    The same checks (format, pixel limit), the same shrink-on-load (JPEG
    draft and progressive scans, libspng for PNG), colour management and
    orientation as a rendition gets. Raises the engine's ``EngineError`` kinds.
    """
    t0 = time.perf_counter()
    im = engine._open(data)
    source = engine._check(im, max_pixels)
    orientation = engine._orientation(im, data)
    swap = orientation in (5, 6, 7, 8)
    up_w, up_h = (source.height, source.width) if swap else (source.width, source.height)
    need_w, need_h = engine._needed_size(up_w, up_h, engine.Spec("analysis", max_side, max_side, "fit"))
    if swap:
        need_w, need_h = need_h, need_w
    try:
        im = engine._decode(data, im, source, need_w, need_h)
        base = engine._normalise_mode(im)
    except Image.DecompressionBombError as exc:
        raise engine.TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise engine.CorruptImage(f"The image data is truncated or corrupt: {exc}") from exc
    if orientation != 1:
        base = base.transpose(engine._ORIENTATION_TRANSPOSE[orientation])
    if base.mode != "RGB":
        base = base.convert("RGB")
    if max(base.size) > max_side:
        target = engine._target_size(base.width, base.height, engine.Spec("analysis", max_side, max_side, "fit"))
        base = base.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(base)
    return Decoded(rgb=rgb, source=source, scale=up_w / rgb.shape[1], ms=(time.perf_counter() - t0) * 1000)


def run(image_rgb: np.ndarray, processors: list[Processor]) -> list[ProcessorResult]:
    """Run each processor on the same pixels, in order."""
    return [p.analyse(image_rgb) for p in processors]
