"""SSIM (Wang, Bovik, Sheikh and Simoncelli, 2004) in NumPy, and the reference
resize the engine's renditions are judged against.

``ssim`` is the standard definition: an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, L = 255, averaged over the image ("valid" windows only,
no padding), computed on luma Y' = 0.299 R' + 0.587 G' + 0.114 B' of the
sRGB-encoded values (as most tools report it). 1.0 means identical.

``reference`` is the slow, high-quality rendition: the full-resolution decode,
its ICC profile converted to sRGB, EXIF orientation applied, then one Pillow
LANCZOS resize straight to the target size (no reducing_gap, no DCT scaling,
no cascade), in sRGB-encoded values, as the engine (and libvips) resize.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageOps

_SIGMA = 1.5
_RADIUS = 5  # 11 taps
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_SRGB = ImageCms.createProfile("sRGB")


def _kernel() -> np.ndarray:
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    k = np.exp(-(x**2) / (2 * _SIGMA**2))
    return k / k.sum()


_K = _kernel()


def _blur(a: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter, 'valid' region only (shrinks each side by 2*radius)."""
    n = len(_K)
    rows = sum(_K[i] * a[:, i : a.shape[1] - n + 1 + i] for i in range(n))
    return sum(_K[i] * rows[i : rows.shape[0] - n + 1 + i, :] for i in range(n))


def luma(im: Image.Image) -> np.ndarray:
    """Y' (BT.601 weights) of an image as float64; grayscale is taken as is.

    Transparent images are composited on mid grey first, so that colour
    hidden under alpha 0 does not count.
    """
    if im.mode in ("LA", "RGBA", "PA", "P"):
        im = im.convert("RGBA")
        grey = Image.new("RGBA", im.size, (128, 128, 128, 255))
        im = Image.alpha_composite(grey, im).convert("RGB")
    if im.mode in ("L", "I;16", "I"):
        return np.asarray(im.convert("L"), dtype=np.float64)
    rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def ssim(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Mean SSIM of two same-size images (Images or 2-D luma arrays)."""
    x = luma(a) if isinstance(a, Image.Image) else np.asarray(a, dtype=np.float64)
    y = luma(b) if isinstance(b, Image.Image) else np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"sizes differ: {x.shape} vs {y.shape}")
    if min(x.shape) < len(_K):
        raise ValueError(f"too small for an {len(_K)}x{len(_K)} window: {x.shape}")
    mu_x, mu_y = _blur(x), _blur(y)
    xx = _blur(x * x) - mu_x**2
    yy = _blur(y * y) - mu_y**2
    xy = _blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * xy + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (xx + yy + _C2)
    return float(np.mean(num / den))


def upright_srgb(data: bytes) -> Image.Image:
    """Full decode (no draft), ICC profile to sRGB, EXIF orientation applied."""
    im = Image.open(io.BytesIO(data))
    im.load()
    icc = im.info.get("icc_profile")
    if im.mode == "CMYK":
        im = im.convert("RGB") if not icc else _icc(im, icc, "RGB")
        icc = None
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        im = im.point(lambda v: v * (255 / 65535)).convert("L") if im.getextrema()[1] > 255 else im.convert("L")
    if icc and im.mode in ("RGB", "RGBA"):
        im = _icc(im, icc, im.mode)
    transposed = ImageOps.exif_transpose(im)
    return transposed if transposed is not None else im


def _icc(im: Image.Image, icc: bytes, out_mode: str) -> Image.Image:
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    out = ImageCms.profileToProfile(im, src, _SRGB, outputMode=out_mode)
    assert out is not None
    return out


def reference(upright: Image.Image, size: tuple[int, int], mode: str = "fit") -> Image.Image:
    """One LANCZOS resize of the full image to ``size``; ``fill`` crops the centre (same box as the engine)."""
    sw, sh = upright.size
    tw, th = size
    if mode == "fill":
        if sw * th > sh * tw:
            cw, ch = sh * tw / th, float(sh)
        else:
            cw, ch = float(sw), sw * th / tw
        box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
        return upright.resize(size, Image.Resampling.LANCZOS, box=box)
    if (sw, sh) == size:
        return upright.copy()
    return upright.resize(size, Image.Resampling.LANCZOS)


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """A photo-like RGB image, the same for the same arguments.

    Texture at every scale with the 1/f amplitude spectrum of natural
    photographs (mostly in luma, some in each channel), plus hard edges and
    thin lines: where a resize that cuts corners shows (aliasing, blur).
    """
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0

    def field(strength: float) -> np.ndarray:
        spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f
        spectrum[0, 0] = 0
        a = np.fft.irfft2(spectrum, s=(height, width))
        return a / a.std() * strength

    luma = field(45)
    rgb = np.stack([128 + luma + field(15), 120 + luma + field(10), 110 + luma + field(15)], axis=-1)
    im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for i in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(20, max(21, width // 3))), y0 + int(rng.integers(20, max(21, height // 3)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if i % 2 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    for _ in range(20):
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line(points, fill=colour, width=int(rng.integers(1, 4)))
    return im
