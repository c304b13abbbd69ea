"""Train the mask classifier (thumbnails/processors/mask_model.npz) from data that registry packages ship.

    .venv/bin/python -m bench.masks_train          # writes thumbnails/processors/mask_model.npz
    make bench-masks                               # measures it (bench/masks_eval.py)

Data, all fetched from PyPI with pip (``pip download --no-deps``, pinned
versions, cached in var/masks-data/; nothing is committed but the model):

* faces: the 100 real faces of LFW that scikit-image ships in its wheel
  (``skimage/data/lfw_subset.npy``, 25x25 grey, cropped tight). A fixed
  split keeps 30 of them out of training for bench/masks_eval.py.
* masks: no package on PyPI synthesises face masks (synthetic-face-masks
  mixes eye and mouth regions between faces for spoofing research; it draws
  no masks), so the masks here are SYNTHETIC MASKS WE DRAW: a polygon over
  the lower face (nose bridge to below the chin, cheek to cheek) at
  randomised size and place, a random flat colour with shading, pleats,
  noise, soft edges and sometimes ear loops. ``draw_mask`` below.

Each training face is used twice, as it is (unmasked) and with a drawn mask
(masked), each time through random augmentations (framing, flips, contrast,
blur, noise), so the two classes differ only by the mask.

The classifier is an L2-regularised logistic regression (Newton's method, in
NumPy) on ``thumbnails.processors.masks.features`` (normalised 25x25 grey
pixels plus a histogram of oriented gradients); the regularisation is chosen
on 15 of the 70 training faces held out by face, then the model is refitted
on all 70. Deterministic: the same seed gives the same file.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from thumbnails.processors import masks

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "var" / "masks-data"
SEED = 20261202
N_TEST_FACES = 30
N_VAL_FACES = 15
WORK = 100  # masks are drawn at 4x the 25 px faces, then averaged down

# name -> (version, "wheel" | "sdist"): the packages whose files are data here.
PACKAGES = {
    "scikit-image": ("0.26.0", "wheel"),  # BSD-3-Clause; LFW subset, astronaut
    "insightface": ("2.1", "wheel"),  # MIT (code); photographed mask textures, t1.jpg, Tom_Hanks_54745.png
    "face_recognition": ("1.3.0", "sdist"),  # MIT; tests/test_images
    "synthetic-face-masks": ("1.0.0", "sdist"),  # MIT; examples/testImages
}


# --- data from packages -------------------------------------------------------------------------


def fetch(name: str) -> Path:
    """The pinned archive of ``name`` from PyPI (pip download --no-deps), cached under var/masks-data."""
    version, kind = PACKAGES[name]
    stem = name.replace("-", "_").lower()
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    def found() -> list[Path]:
        return [
            p
            for p in DATA_DIR.iterdir()
            if p.name.lower().startswith(f"{stem}-{version}")
            and p.name.endswith(".whl" if kind == "wheel" else ".tar.gz")
        ]

    if not found():
        binary = "--only-binary=:all:" if kind == "wheel" else "--no-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", binary, "-d", str(DATA_DIR)]
        subprocess.run([*cmd, f"{name}=={version}"], check=True)
    paths = found()
    if not paths:
        raise SystemExit(f"pip download {name}=={version} left no {kind} in {DATA_DIR}")
    return paths[0]


def members(name: str, suffixes: tuple[str, ...], under: str = "") -> dict[str, bytes]:
    """Files of package ``name`` whose path contains ``under`` and ends with one of ``suffixes``."""
    path = fetch(name)
    out: dict[str, bytes] = {}
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            for n in z.namelist():
                if under in n and n.lower().endswith(suffixes):
                    out[n] = z.read(n)
    else:
        with tarfile.open(path) as t:
            for m in t.getmembers():
                if m.isfile() and under in m.name and m.name.lower().endswith(suffixes):
                    f = t.extractfile(m)
                    if f is not None:
                        out[m.name] = f.read()
    return dict(sorted(out.items()))


def lfw_faces() -> np.ndarray:
    """The 100 real faces of scikit-image's LFW subset, 25x25 uint8 grey."""
    (raw,) = members("scikit-image", (".npy",), "skimage/data/lfw_subset").values()
    arr = np.load(io.BytesIO(raw), allow_pickle=False)
    return np.round(arr[:100] * 255).astype(np.uint8)


def face_split() -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices into lfw_faces(): a fixed split, the test faces never trained on."""
    order = np.random.default_rng(SEED).permutation(100)
    return np.sort(order[N_TEST_FACES:]), np.sort(order[:N_TEST_FACES])


def mask_textures() -> list[np.ndarray]:
    """insightface's photographs of surgical masks (black, blue, green, white) as RGB arrays."""
    files = members("insightface", (".jpg",), "insightface/data/images/mask_")
    return [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in files.values()]


# --- synthetic masks ----------------------------------------------------------------------------


def mask_polygon(rng: np.random.Generator, w: int, h: int, top: tuple[float, float]) -> list[tuple[float, float]]:
    """A mask's outline over the lower face of a w x h face box: nose bridge to chin, cheek to cheek."""
    t = rng.uniform(*top)  # top edge (nose bridge), fraction of the height
    b = rng.uniform(0.96, 1.08)  # bottom (below the chin)
    cx = 0.5 + rng.uniform(-0.04, 0.04)
    half = rng.uniform(0.30, 0.42)  # half width at the top
    sag = rng.uniform(0.0, 0.06)  # how far the top corners sit below the bridge
    pts: list[tuple[float, float]] = [(cx - half, t + sag), (cx, t), (cx + half, t + sag)]
    # the right side, then the bottom as half an ellipse, then back up the left side
    for a in np.linspace(0.0, np.pi, 13):
        x = cx + np.cos(a) * half * rng.uniform(0.9, 1.0)
        y = t + sag + np.sin(a) * (b - t - sag)
        pts.append((x, y))
    return [(x * w, y * h) for x, y in pts]


def draw_mask(
    face_rgb: np.ndarray,
    rng: np.random.Generator,
    texture: np.ndarray | None = None,
    top: tuple[float, float] = (0.46, 0.62),
) -> np.ndarray:
    """``face_rgb`` (a face box, uint8 HxWx3) wearing a synthetic mask: a random flat colour, or ``texture``."""
    h, w = face_rgb.shape[:2]
    poly = mask_polygon(rng, w, h, top)
    alpha = Image.new("L", (w, h), 0)
    ImageDraw.Draw(alpha).polygon(poly, fill=255)
    alpha = alpha.filter(ImageFilter.GaussianBlur(radius=max(0.5, w / 120)))
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    x0, x1, y0, y1 = int(min(xs)), int(np.ceil(max(xs))), int(min(ys)), int(np.ceil(max(ys)))
    bw, bh = max(1, x1 - x0), max(1, y1 - y0)
    if texture is not None:
        tex = np.asarray(Image.fromarray(texture).resize((bw, bh), Image.Resampling.BILINEAR), dtype=np.float64)
    else:
        colour = _mask_colour(rng)
        tex = np.ones((bh, bw, 3)) * colour
        if rng.random() < 0.6:  # pleats: darker horizontal bands
            for k in range(int(rng.integers(2, 4))):
                yy = int(bh * (0.25 + 0.2 * k + rng.uniform(-0.04, 0.04)))
                tex[max(0, yy - max(1, bh // 40)) : yy + max(1, bh // 40)] *= rng.uniform(0.75, 0.92)
        shade = 1.0 - rng.uniform(0.0, 0.35) * (np.linspace(-1, 1, bw) ** 2)  # rounder at the cheeks
        tex = tex * shade[None, :, None] * rng.uniform(0.85, 1.1)
        tex = tex + rng.normal(0.0, rng.uniform(1.0, 8.0), tex.shape)
    layer = np.zeros((h, w, 3))
    ys0, xs0 = max(0, y0), max(0, x0)
    ys1, xs1 = min(h, y0 + bh), min(w, x0 + bw)
    layer[ys0:ys1, xs0:xs1] = tex[ys0 - y0 : ys1 - y0, xs0 - x0 : xs1 - x0]
    a = np.asarray(alpha, dtype=np.float64)[:, :, None] / 255.0
    out = face_rgb.astype(np.float64) * (1 - a) + layer * a
    if texture is None and rng.random() < 0.4:  # ear loops, drawn from the mask's corners to the edges
        im = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(im)
        c = tuple(int(v) for v in _mask_colour(rng))
        lw = max(1, w // 60)
        (lx, ly), (rx, ry) = poly[0], poly[2]
        d.line([(lx, ly), (0, ly - h * 0.05)], fill=c, width=lw)
        d.line([(rx, ry), (w - 1, ry - h * 0.05)], fill=c, width=lw)
        return np.asarray(im)
    return np.clip(out, 0, 255).astype(np.uint8)


def _mask_colour(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.3:  # white / light grey
        return np.full(3, rng.uniform(190, 255)) + rng.normal(0, 5, 3)
    if r < 0.5:  # surgical blue / green
        return np.array([rng.uniform(100, 190), rng.uniform(170, 230), rng.uniform(200, 255)])
    if r < 0.7:  # black / dark grey
        return np.full(3, rng.uniform(10, 70)) + rng.normal(0, 5, 3)
    return rng.uniform(0, 255, 3)  # any colour (cloth masks)


# --- augmentation and the training set ------------------------------------------------------------


def upscale(gray25: np.ndarray) -> np.ndarray:
    """A 25x25 grey face as a WORK x WORK RGB uint8 image (bicubic), to draw on."""
    im = Image.fromarray(gray25).resize((WORK, WORK), Image.Resampling.BICUBIC).convert("RGB")
    return np.asarray(im)


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random framing (+-12% scale, +-7% shift), flip, contrast, gamma, blur and noise of a face image."""
    h, w = img.shape[:2]
    pad = int(0.15 * w)
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    s = w * rng.uniform(0.88, 1.12)
    cx = pad + w / 2 + rng.uniform(-0.07, 0.07) * w
    cy = pad + h / 2 + rng.uniform(-0.07, 0.07) * h
    im = Image.fromarray(padded).crop((int(cx - s / 2), int(cy - s / 2), int(cx + s / 2), int(cy + s / 2)))
    im = im.resize((w, h), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.3, 2.0)))
    x = np.asarray(im, dtype=np.float64) / 255.0
    x = np.clip(x, 0, 1) ** rng.uniform(0.7, 1.4)
    x = (x - 0.5) * rng.uniform(0.7, 1.3) + 0.5 + rng.uniform(-0.15, 0.15)
    x = x + rng.normal(0, rng.uniform(0.0, 0.03), x.shape)
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def build(faces: np.ndarray, idx: np.ndarray, per_face: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels: every face in ``idx``, ``per_face`` times unmasked and ``per_face`` times masked."""
    grays, labels = [], []
    for i in idx:
        base = upscale(faces[i])
        for _ in range(per_face):
            grays.append(masks.to_gray(augment(base, rng)))
            labels.append(0)
            grays.append(masks.to_gray(augment(draw_mask(base, rng), rng)))
            labels.append(1)
    return masks.features(np.stack(grays)), np.array(labels, dtype=np.float64)


# --- logistic regression ---------------------------------------------------------------------


def fit(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 25) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, weights, bias) of an L2-regularised logistic regression, by Newton's method."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    theta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # the bias is not shrunk
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ theta, -50, 50)))
        grad = z.T @ (p - y) + reg * theta
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-6:
            break
    return mean, scale, theta[:-1], float(theta[-1])


def log_loss(x: np.ndarray, y: np.ndarray, params: tuple[np.ndarray, np.ndarray, np.ndarray, float]) -> float:
    mean, scale, w, b = params
    p = 1.0 / (1.0 + np.exp(-np.clip(((x - mean) / scale) @ w + b, -50, 50)))
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-face", type=int, default=40, help="augmented copies per face and class")
    ap.add_argument("--out", type=Path, default=masks.MODEL_PATH)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    faces = lfw_faces()
    train, _test = face_split()
    val, fit_idx = train[:N_VAL_FACES], train[N_VAL_FACES:]
    rng = np.random.default_rng(SEED)
    x_fit, y_fit = build(faces, fit_idx, args.per_face, rng)
    x_val, y_val = build(faces, val, args.per_face, rng)
    print(f"choosing L2 on {len(fit_idx)} faces ({len(y_fit)} examples), validating on {len(val)} others")
    best = None
    for l2 in (1.0, 10.0, 100.0, 1000.0):
        params = fit(x_fit, y_fit, l2)
        mean, scale, w, b = params
        acc = float(((((x_val - mean) / scale) @ w + b >= 0) == (y_val == 1)).mean())
        loss = log_loss(x_val, y_val, params)
        print(f"  l2={l2:<7g} validation log-loss {loss:.4f}  accuracy {acc:.4f}")
        if best is None or loss < best[0]:
            best = (loss, l2)
    assert best is not None
    l2 = best[1]
    x_all, y_all = build(faces, train, args.per_face, rng)
    mean, scale, w, b = fit(x_all, y_all, l2)
    version = f"1-lfw{len(train)}x{args.per_face}-l2_{l2:g}"
    np.savez_compressed(
        args.out,
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        weights=w.astype(np.float32),
        bias=np.float32(b),
        threshold=np.float32(0.5),
        version=np.str_(version),
    )
    print(f"l2={l2:g}: fitted on {len(train)} faces ({len(y_all)} examples); wrote {args.out} "
          f"({args.out.stat().st_size} bytes, version {version}) in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
