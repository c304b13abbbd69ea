"""Masks: whether each face crop wears a mask, by a small logistic regression trained here (docs/masks.md).

The model is ``mask_model.npz`` beside this file (a few kB), made by
``bench/masks_train.py`` from data that registry packages ship: the 100 real
LFW faces in scikit-image's wheel (25x25 grey), half of them given a
synthetic mask drawn by that script. No package on PyPI ships a usable mask
classifier or a mask synthesiser (docs/masks.md says which were read and why
each was turned down), so the masked examples are masks we drew ourselves.
It has therefore been measured on synthetic masks only (``make
bench-masks``): how well it does on real masks is not known. The unmasked
side of the measurement is real faces.

Runtime needs NumPy and Pillow only (both already installed on a worker).
The model is loaded once per process, on first use, under a lock.

A crop goes grey (Pillow's ITU-R 601 luma), is averaged down to 25x25
(the training faces' size), normalised to zero mean and unit variance, and
described by its pixels plus a histogram of oriented gradients (5x5-pixel
cells, 8 unsigned orientations); the regression's probability of "masked"
is its score, and a score of at least the model's threshold (0.5) is a mask.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MODEL_PATH = Path(__file__).with_name("mask_model.npz")
MODEL_NAME = "imageshare-mask-logreg"
SIZE = 25  # the training faces' side (scikit-image's LFW subset)
CELL = 5  # HOG cell side, pixels
BINS = 8  # HOG orientations over [0, pi)


@dataclass(frozen=True)
class MaskResult:
    masked: list[bool] | None  # one per face crop, in order, or None when no classifier can say
    reason: str | None  # why masked is None (shown to users), else None
    model: str  # e.g. "imageshare-mask-logreg" or "none"
    version: str
    scores: list[float] | None = None  # probability of "masked" per face, when a model ran


@dataclass(frozen=True)
class Model:
    mean: np.ndarray  # feature means (training set)
    scale: np.ndarray  # feature standard deviations (training set)
    weights: np.ndarray
    bias: float
    threshold: float
    version: str

    def scores(self, feats: np.ndarray) -> np.ndarray:
        z = ((feats - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def to_gray(crop_rgb: np.ndarray) -> np.ndarray:
    """An RGB (or grey) uint8 crop as a SIZE x SIZE float32 grey image in [0, 1], area-averaged."""
    arr = np.ascontiguousarray(crop_rgb)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or min(arr.shape[:2]) < 1:
        raise ValueError(f"a face crop must be HxWx3 (or HxW) uint8, not shape {arr.shape}")
    im = Image.fromarray(arr.astype(np.uint8, copy=False))
    if im.mode != "L":
        im = im.convert("L")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32) / 255.0


def features(gray: np.ndarray) -> np.ndarray:
    """Features of N grey SIZE x SIZE faces (N x SIZE x SIZE): normalised pixels, then HOG."""
    g = np.asarray(gray, dtype=np.float64).reshape(-1, SIZE, SIZE)
    n = g.shape[0]
    g = g - g.mean(axis=(1, 2), keepdims=True)
    g = g / (g.std(axis=(1, 2), keepdims=True) + 1e-3)
    gx = np.zeros_like(g)
    gy = np.zeros_like(g)
    gx[:, :, 1:-1] = g[:, :, 2:] - g[:, :, :-2]
    gy[:, 1:-1, :] = g[:, 2:, :] - g[:, :-2, :]
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((ang / np.pi * BINS).astype(np.int64), BINS - 1)
    cells = SIZE // CELL
    hog = np.zeros((n, cells, cells, BINS))
    for b in range(BINS):
        w = np.where(bins == b, mag, 0.0)
        # sum each CELL x CELL block: rows then columns
        starts = np.arange(0, SIZE, CELL)
        hog[:, :, :, b] = np.add.reduceat(np.add.reduceat(w, starts, axis=1), starts, axis=2)
    flat = hog.reshape(n, -1)
    flat = flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6)
    return np.concatenate([g.reshape(n, -1) / SIZE, flat], axis=1)


def load(path: Path = MODEL_PATH) -> Model:
    with np.load(path, allow_pickle=False) as z:
        return Model(
            mean=z["mean"],
            scale=z["scale"],
            weights=z["weights"],
            bias=float(z["bias"]),
            threshold=float(z["threshold"]),
            version=str(z["version"]),
        )


_lock = threading.Lock()
_model: Model | None = None
_error: str | None = None


def _get() -> Model | None:
    """The model, loaded once per process; None (and ``_error`` says why) when it cannot load."""
    global _model, _error
    with _lock:
        if _model is None and _error is None:
            try:
                _model = load(MODEL_PATH)
            except (OSError, KeyError, ValueError) as exc:
                # short (the payload's mask_reason holds 255 characters) and no paths
                _error = f"the model file {MODEL_PATH.name} did not load ({type(exc).__name__})"
        return _model


def score(face_rgb_crops: list[np.ndarray], model: Model) -> np.ndarray:
    if not face_rgb_crops:
        return np.zeros(0)
    return model.scores(features(np.stack([to_gray(c) for c in face_rgb_crops])))


def classify(face_rgb_crops: list[np.ndarray]) -> MaskResult:
    """One masked flag (and score) per crop, in order; masked None with a reason when no model can say."""
    model = _get()
    if model is None:
        return MaskResult(
            masked=None, reason=f"No mask classifier is installed: {_error}", model="none", version="0", scores=None
        )
    s = score(face_rgb_crops, model)
    return MaskResult(
        masked=[bool(v >= model.threshold) for v in s],
        reason=None,
        model=MODEL_NAME,
        version=model.version,
        scores=[round(float(v), 4) for v in s],
    )
