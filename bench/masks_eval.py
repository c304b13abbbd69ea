"""Measure the mask classifier (thumbnails.processors.masks) on labelled sets built here: make bench-masks.

    make bench-masks
    .venv/bin/python -m bench.masks_eval [--sheet var/masks-sheet.png]

Every set pairs each real, unmasked face (label: unmasked) with the same face
given a synthetic mask (label: masked), so the classes are balanced and the
only difference is the mask. THE MASKED FACES ARE ALL SYNTHETIC: no package
on PyPI ships photographs of people wearing masks. What the figures say
about real masks is therefore limited (docs/masks.md).

Sets (faces and masks as bench/masks_train.py fetches them, pinned):

* ``lfw-photo-masks``: the 30 LFW faces of scikit-image's wheel that
  training never saw, each also under a PHOTOGRAPHED surgical mask
  (insightface's mask_{black,blue,green,white}.jpg, cut to our mask
  outline): a mask appearance training never saw.
* ``photos-haar-photo-masks``: colour photographs that packages ship
  (scikit-image's astronaut, insightface's t1.jpg and Tom Hanks,
  face_recognition's and synthetic-face-masks' test images), decoded and
  searched for faces exactly as the worker does (thumbnails.processors.decode,
  faces.detect); each face box as the worker would crop it, and again with a
  photographed mask drawn into the box. Faces, framing and colour that
  training never saw.
* ``lfw-drawn-masks`` (reference only): the 30 held-out LFW faces under masks
  drawn by the training generator with another seed: the same family of
  masks as training, so an optimistic figure.
* set 2 with a 15% margin around each box (reference only): how much the
  framing matters, for a caller that would crop wider than the Haar box.

The headline is the first two together. The reference baseline, in the same
run, is the majority class (the sets are balanced, so: always "masked").
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from bench import masks_train as mt
from thumbnails import processors
from thumbnails.processors import faces, masks

EVAL_SEED = 7  # not the training seed: other mask shapes and placements


@dataclass
class Sample:
    crop: np.ndarray  # RGB uint8, as the worker would pass it
    label: bool  # True: masked
    source: str


def lfw_set(textures: list[np.ndarray] | None) -> list[Sample]:
    all_faces = mt.lfw_faces()
    _train, test = mt.face_split()
    rng = np.random.default_rng(EVAL_SEED)
    out = []
    for k, i in enumerate(test):
        base = mt.upscale(all_faces[i])  # both classes take the same path (up x4, then the model's averaging down)
        tex = textures[k % len(textures)] if textures else None
        out.append(Sample(base, False, f"lfw[{i}]"))
        out.append(Sample(mt.draw_mask(base, rng, texture=tex), True, f"lfw[{i}]+mask"))
    return out


def photos() -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    found.update(mt.members("scikit-image", ("astronaut.png",), "skimage/data/"))
    found.update(mt.members("insightface", ("t1.jpg", "tom_hanks_54745.png"), "insightface/data/images/"))
    found.update(mt.members("face_recognition", (".jpg", ".png"), "tests/test_images/"))
    found.update(mt.members("synthetic-face-masks", (".jpg",), "examples/testImages/"))
    return found


def photo_set(textures: list[np.ndarray], margin: float = 0.0) -> tuple[list[Sample], list[str]]:
    """Set 2; ``margin`` > 0 widens each Haar box by that fraction on every side (a reference row)."""
    rng = np.random.default_rng(EVAL_SEED)
    out: list[Sample] = []
    notes = []
    k = 0
    for name, data in photos().items():
        dec = processors.decode(data)
        gray = cv2.equalizeHist(cv2.cvtColor(dec.rgb, cv2.COLOR_RGB2GRAY))
        boxes = faces.detect(gray)
        notes.append(f"{name.rsplit('/', 1)[-1]}: {len(boxes)}")
        for x, y, w, h in boxes:
            crop = np.ascontiguousarray(dec.rgb[y : y + h, x : x + w])
            short = name.rsplit("/", 1)[-1]
            # A Haar box runs from the brows to about the lower lip's level, lower than LFW's crops end,
            # so the mask's top (nose bridge) sits a little higher in it. Checked by eye (--sheet).
            masked = mt.draw_mask(crop, rng, texture=textures[k % len(textures)], top=(0.42, 0.55))
            k += 1
            if margin:
                crop, masked = widen(dec.rgb, (x, y, w, h), margin, masked)
            out.append(Sample(crop, False, f"{short}@{x},{y}"))
            out.append(Sample(masked, True, f"{short}@{x},{y}+mask"))
    return out, notes


def widen(
    rgb: np.ndarray, box: tuple[int, int, int, int], margin: float, masked_box: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The box widened by ``margin`` on every side (clipped to the image), without and with the masked box."""
    x, y, w, h = box
    mx, my = int(w * margin), int(h * margin)
    x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(rgb.shape[1], x + w + mx), min(rgb.shape[0], y + h + my)
    plain = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    masked = plain.copy()
    masked[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = masked_box
    return plain, masked


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, label: bool, pred: bool) -> None:
        if label and pred:
            self.tp += 1
        elif pred:
            self.fp += 1
        elif label:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def fmt(k: int, n: int) -> str:
    if n == 0:
        return "   n/a              "
    lo, hi = wilson(k, n)
    return f"{k / n:6.3f} [{lo:.3f}-{hi:.3f}]"


def report(title: str, samples: list[Sample], preds: list[bool]) -> None:
    model, base = Counts(), Counts()
    for s, p in zip(samples, preds, strict=True):
        model.add(s.label, p)
        base.add(s.label, True)  # majority class (balanced sets: "masked")
    print(f"\n== {title}: n={model.n} ({model.tp + model.fn} masked, {model.fp + model.tn} unmasked)")
    print(f"   {'':26s}{'precision (95% CI)':22s}{'recall (95% CI)':22s}{'accuracy (95% CI)':22s}")
    for name, c in ((masks.MODEL_NAME, model), ("baseline: always masked", base)):
        print(f"   {name:26s}{fmt(c.tp, c.tp + c.fp):22s}{fmt(c.tp, c.tp + c.fn):22s}{fmt(c.tp + c.tn, c.n):22s}")
    print("   confusion matrix (rows: truth, columns: the model's answer)")
    print(f"   {'':18s}{'masked':>8s}{'unmasked':>10s}")
    print(f"   {'truly masked':18s}{model.tp:8d}{model.fn:10d}")
    print(f"   {'truly unmasked':18s}{model.fp:8d}{model.tn:10d}")


def sheet(samples: list[Sample], scores: np.ndarray, path: str, cell: int = 64) -> None:
    cols = 16
    rows = math.ceil(len(samples) / cols)
    im = Image.new("RGB", (cols * cell, rows * cell), (0, 0, 0))
    for j, s in enumerate(samples):
        tile = Image.fromarray(s.crop).convert("RGB").resize((cell, cell))
        im.paste(tile, ((j % cols) * cell, (j // cols) * cell))
    im.save(path)
    print(f"wrote {path} ({len(samples)} crops, row-major; scores in the same order: {np.round(scores, 2).tolist()})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheet", help="also write the photo set's crops as a contact sheet here (PNG)")
    args = ap.parse_args(argv)
    model = masks._get()
    if model is None:
        print(f"no model: {masks._error}")
        return 1
    textures = mt.mask_textures()
    lfw_photo = lfw_set(textures)
    photo, notes = photo_set(textures)
    lfw_drawn = lfw_set(None)
    wide, _ = photo_set(textures, margin=0.15)
    print(f"model {masks.MODEL_NAME} {model.version} ({masks.MODEL_PATH.name}), threshold {model.threshold}")
    print("faces found by faces.detect per photo: " + ", ".join(notes))
    results = {}
    for key, samples in (("lfw", lfw_photo), ("photos", photo), ("drawn", lfw_drawn), ("wide", wide)):
        result = masks.classify([s.crop for s in samples])
        assert result.masked is not None and result.scores is not None
        results[key] = (samples, result.masked, np.array(result.scores))
    s1, p1, _ = results["lfw"]
    s2, p2, sc2 = results["photos"]
    s3, p3, _ = results["drawn"]
    s4, p4, _ = results["wide"]
    report("HEADLINE: real unmasked faces vs the same faces under photographed masks (sets 1+2)", s1 + s2, p1 + p2)
    report("set 1, lfw-photo-masks: 30 held-out LFW faces (25x25 grey)", s1, p1)
    report("set 2, photos-haar-photo-masks: package photos, worker's Haar crops (colour)", s2, p2)
    report("reference, lfw-drawn-masks: held-out faces, masks of the training family (optimistic)", s3, p3)
    report("reference, set 2 with 15% margin around each Haar box (framing the worker does not use)", s4, p4)
    wrong = [f"{s.source} ({sc:.2f})" for s, p, sc in zip(s2, p2, sc2, strict=True) if p != s.label]
    print("\nset 2 errors (crop, score): " + (", ".join(wrong) if wrong else "none"))
    if args.sheet:
        sheet(s2, sc2, args.sheet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
