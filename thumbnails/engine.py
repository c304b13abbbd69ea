"""The image engine: bytes and specs in, encoded renditions with timings out.

Pure functions, no I/O, no Django, no queue: the Celery task in
``thumbnails.tasks`` fetches and stores, this module only computes, so every
behaviour here is testable on images a test builds in memory.

How one call works (``render``):
1. ``probe`` reads the header only: format allowed, pixel count within the
   limit. Nothing is decoded before that check, so a decompression bomb (a
   tiny PNG declaring 30000x30000) is refused without allocating its pixels.
2. For JPEG, ``draft`` asks libjpeg to decode at 1/2, 1/4 or 1/8 scale (DCT
   shrink-on-load) to the smallest size that still covers the largest
   rendition, which is most of the speed on large photos.
3. The decoded frame is normalised once: first frame of an animation, ICC
   profile converted to sRGB, CMYK/YCCK to RGB, 16-bit and palette modes to
   8-bit, EXIF orientation applied.
4. Renditions are made largest first, each from the smallest result made so
   far that still covers it (a cascade), with a box ``reduce`` step followed
   by LANCZOS for the last step, so quality stays while cost falls.
5. Each rendition is encoded without any metadata (no EXIF, GPS, XMP): JPEG
   for opaque images, PNG for images with real transparency.

Animated GIF/WebP/PNG: the first frame is used.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from PIL import Image, ImageCms, UnidentifiedImageError

# Formats accepted as input; anything else is refused from the header.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "MPO"})

# Pillow refuses images above 2x this value with its own DecompressionBombError
# (raised inside Image.open, before our check could word it). Our limit
# (``max_pixels``) is checked from the header first; Pillow's guard stays on
# as a second line of defence, set above any sane setting of ours.
Image.MAX_IMAGE_PIXELS = 1_000_000_000

OUTPUT_TYPES = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
    "AVIF": ("image/avif", "avif"),
}

# Orientation tag value -> the transpose that makes the image upright.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112

_SRGB_PROFILE = ImageCms.createProfile("sRGB")
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"})


class EngineError(Exception):
    """An image the engine refuses. ``code`` is stable and shown to users."""

    code = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFormat(EngineError):
    code = "unsupported_format"


class CorruptImage(EngineError):
    code = "corrupt_image"


class TooManyPixels(EngineError):
    code = "too_many_pixels"


class InvalidSpec(EngineError):
    code = "invalid_spec"


@dataclass(frozen=True)
class Spec:
    """One rendition to make: fit inside ``width``x``height`` or fill it exactly."""

    name: str
    width: int
    height: int
    mode: str = "fit"  # "fit": inside the box, never upscaled; "fill": exact size, centre crop

    def __post_init__(self) -> None:
        if self.mode not in ("fit", "fill"):
            raise InvalidSpec(f"mode must be 'fit' or 'fill', not {self.mode!r}")
        if not (1 <= self.width <= MAX_SPEC_SIDE and 1 <= self.height <= MAX_SPEC_SIDE):
            raise InvalidSpec(f"width and height must be between 1 and {MAX_SPEC_SIDE}")


MAX_SPEC_SIDE = 4096

STANDARD_SPECS = (
    Spec("large", 600, 600),
    Spec("medium", 300, 300),
    Spec("small", 100, 100),
)


@dataclass(frozen=True)
class Probe:
    format: str
    width: int
    height: int
    mime: str


@dataclass
class Rendition:
    name: str
    data: bytes
    width: int
    height: int
    format: str  # Pillow format name: JPEG, PNG, WEBP, AVIF
    content_type: str
    extension: str
    ms: float  # resize + encode time


@dataclass
class Result:
    source: Probe
    renditions: list[Rendition]
    timings: dict[str, float] = field(default_factory=dict)  # stage -> ms


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat("The file is not an image in a supported format.") from exc
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImage(f"The image header cannot be read: {exc}") from exc


def _check(im: Image.Image, max_pixels: int) -> Probe:
    fmt = im.format or ""
    if fmt not in ALLOWED_FORMATS:
        raise UnsupportedFormat(f"Images in {fmt or 'this'} format are not accepted.")
    width, height = im.size
    if width < 1 or height < 1:
        raise CorruptImage("The image declares no pixels.")
    if width * height > max_pixels:
        raise TooManyPixels(
            f"The image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {max_pixels / 1e6:.1f} megapixels."
        )
    return Probe(fmt, width, height, Image.MIME.get(fmt, "application/octet-stream"))


def probe(data: bytes, *, max_pixels: int) -> Probe:
    """Read the header only and check the format and the pixel limit."""
    with _open(data) as im:
        return _check(im, max_pixels)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not fail the image; treat as upright
        return 1
    return value if value in _ORIENTATION_TRANSPOSE else 1


def _target_size(src_w: int, src_h: int, spec: Spec) -> tuple[int, int]:
    """Output size of ``spec`` for an upright source of ``src_w``x``src_h``."""
    if spec.mode == "fill":
        # Never enlarge: a box bigger than the source shrinks (same aspect)
        # until it fits, so a 4096x4096 fill of a 10x10 image is 10x10.
        shrink = min(src_w / spec.width, src_h / spec.height, 1.0)
        return max(1, int(spec.width * shrink + 0.5)), max(1, int(spec.height * shrink + 0.5))
    scale = min(spec.width / src_w, spec.height / src_h, 1.0)
    # Round half up (as libvips does), keep at least one pixel: the aspect
    # ratio stays within one pixel of the original's.
    return max(1, int(src_w * scale + 0.5)), max(1, int(src_h * scale + 0.5))


def _needed_size(src_w: int, src_h: int, spec: Spec) -> tuple[int, int]:
    """The smallest source size (same aspect) from which ``spec`` is made without upscaling."""
    if spec.mode == "fill":
        scale = max(spec.width / src_w, spec.height / src_h)
    else:
        scale = min(spec.width / src_w, spec.height / src_h)
    scale = min(scale, 1.0)
    return math.ceil(src_w * scale), math.ceil(src_h * scale)


def _normalise_mode(im: Image.Image) -> Image.Image:
    """Convert any decoded mode to L, LA, RGB or RGBA in sRGB."""
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode == "P" or mode == "PA":
        im = im.convert("RGBA" if ("transparency" in im.info or mode == "PA") else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: scale to 8 bits instead of clipping.
        im = im.convert("I") if mode != "I" else im
        lo, hi = cast("tuple[float, float]", im.getextrema())  # one band: (min, max)
        if hi > 255:
            im = im.point(lambda v: v * (255 / 65535))
        im = im.convert("L")
    elif mode == "F":
        im = im.convert("L")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        if icc and mode == "CMYK":
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                im = cast(Image.Image, ImageCms.profileToProfile(im, src, _SRGB_PROFILE, outputMode="RGB"))
                icc = None
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
                icc = None
        else:
            im = im.convert("RGB")
            icc = None
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    if icc and im.mode in ("RGB", "RGBA"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            im = cast(Image.Image, ImageCms.profileToProfile(im, src, _SRGB_PROFILE, outputMode=im.mode))
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unreadable profile: keep the pixels as they are (assume sRGB)
    elif icc and im.mode in ("L", "LA"):
        pass  # grayscale profiles are gamma curves close to sRGB's; keep grayscale
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    return im


def _has_transparency(im: Image.Image) -> bool:
    if im.mode not in ("LA", "RGBA"):
        return False
    lo, _ = cast("tuple[float, float]", im.getchannel("A").getextrema())  # one band: (min, max)
    return lo < 255


def _resize(im: Image.Image, size: tuple[int, int], mode: str) -> Image.Image:
    if mode == "fill":
        tw, th = size
        sw, sh = im.size
        cw: float
        ch: float
        # Centre crop box in source coordinates with the target's aspect ratio.
        if sw * th > sh * tw:
            cw, ch = sh * tw / th, sh
        else:
            cw, ch = sw, sw * th / tw
        box = ((sw - cw) / 2, (sh - ch) / 2, (sw + cw) / 2, (sh + ch) / 2)
        if (sw, sh) == size:
            return im.copy()
        return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
    if im.size == size:
        return im.copy()
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        # Progressive for the larger sizes, where it saves bytes and shows early.
        im.save(buf, "JPEG", quality=quality, progressive=max(im.size) > 300, optimize=False)
    elif fmt == "PNG":
        im.save(buf, "PNG", compress_level=6)
    elif fmt == "WEBP":
        im.save(buf, "WEBP", quality=quality, method=4)
    elif fmt == "AVIF":
        im.save(buf, "AVIF", quality=quality, speed=8)
    else:  # pragma: no cover - guarded by OUTPUT_TYPES
        raise ValueError(fmt)
    return buf.getvalue()


def render(
    data: bytes,
    specs: Iterable[Spec] = STANDARD_SPECS,
    *,
    max_pixels: int = 50_000_000,
    jpeg_quality: int = 85,
    extra_formats: tuple[str, ...] = (),
) -> Result:
    """Make every rendition in ``specs`` from the encoded image ``data``.

    ``extra_formats`` ("WEBP", "AVIF") adds a second encoding of each rendition
    alongside the main one (JPEG, or PNG with transparency), named
    ``<name>.<ext>``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    im = _open(data)
    source = _check(im, max_pixels)
    specs = list(specs)
    if not specs:
        raise InvalidSpec("No renditions were asked for.")
    for fmt in extra_formats:
        if fmt not in ("WEBP", "AVIF"):
            raise InvalidSpec(f"Unknown extra output format {fmt!r}.")

    orientation = _orientation(im)
    swap = orientation in (5, 6, 7, 8)
    up_w, up_h = (source.height, source.width) if swap else (source.width, source.height)

    try:
        # 2. Shrink-on-load: the largest size any spec needs, in stored (not upright) axes.
        need_w = max(_needed_size(up_w, up_h, s)[0] for s in specs)
        need_h = max(_needed_size(up_w, up_h, s)[1] for s in specs)
        if swap:
            need_w, need_h = need_h, need_w
        if source.format == "JPEG" or source.format == "MPO":
            im.draft(im.mode if im.mode in ("L", "RGB", "CMYK") else None, (need_w, need_h))
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        im.load()
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"The image data is truncated or corrupt: {exc}") from exc
    timings["decode"] = (time.perf_counter() - t0) * 1000

    t1 = time.perf_counter()
    # 3a. Box-reduce by an integer factor while the image stays at least twice
    # the largest size needed, so the colour transform below (and every
    # resize after it) works on a small image. JPEGs mostly arrive here
    # already shrunk by draft(); this is what makes large PNGs cheap.
    factor = min(im.width // (2 * need_w), im.height // (2 * need_h))
    if factor >= 2 and im.mode in _REDUCIBLE_MODES:
        reduced = im.reduce(factor)
        reduced.info = im.info
        im.close()
        im = reduced
    # 3b. Normalise once: colour, mode, orientation.
    base = _normalise_mode(im)
    if orientation != 1:
        base = base.transpose(_ORIENTATION_TRANSPOSE[orientation])
    if base is not im:
        im.close()  # release the decoded original as soon as it is no longer needed
    alpha = _has_transparency(base)
    if not alpha and base.mode in ("LA", "RGBA"):
        base = base.convert("L" if base.mode == "LA" else "RGB")
    timings["normalise"] = (time.perf_counter() - t1) * 1000

    main_fmt = "PNG" if alpha else "JPEG"
    formats = (main_fmt, *extra_formats)

    # 4. Cascade: largest output first; each one made from the smallest
    # intermediate that still covers it by the reducing gap (or the base).
    bw, bh = base.size
    order = sorted(specs, key=lambda s: -max(_needed_size(bw, bh, s)))
    # Output sizes come from the original's dimensions, not the shrunk
    # base's, so rounding matches what the full-size image would give.
    made: list[Image.Image] = [base]
    renditions: dict[str, list[Rendition]] = {}
    for spec in order:
        t = time.perf_counter()
        size = _target_size(up_w, up_h, spec)
        need = _needed_size(bw, bh, spec)
        src = base
        for cand in made:
            # Reuse an earlier (uncropped "fit") output only if it is at least
            # twice as large as needed, so the last LANCZOS step still has
            # real detail to work on.
            if cand.width >= 2 * need[0] and cand.height >= 2 * need[1] and cand.width < src.width:
                src = cand
        out = _resize(src, size, spec.mode)
        if spec.mode == "fit":
            made.append(out)
        t_resize = (time.perf_counter() - t) * 1000
        group = []
        for fmt in formats:
            te = time.perf_counter()
            encoded = _encode(out, fmt, jpeg_quality)
            ctype, ext = OUTPUT_TYPES[fmt]
            group.append(
                Rendition(
                    name=spec.name,
                    data=encoded,
                    width=out.width,
                    height=out.height,
                    format=fmt,
                    content_type=ctype,
                    extension=ext,
                    ms=t_resize + (time.perf_counter() - te) * 1000,
                )
            )
        renditions[spec.name] = group
        timings[spec.name] = (time.perf_counter() - t) * 1000
    timings["total"] = (time.perf_counter() - t0) * 1000
    ordered = [r for s in specs for r in renditions[s.name]]
    return Result(source=source, renditions=ordered, timings=timings)
