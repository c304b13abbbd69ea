"""The image engine: bytes and specs in, encoded renditions with timings out.

Over 400 lines on purpose: the decode-once-and-cascade pipeline shares its
intermediate state (draft scale, normalised mode, colour transform) across
steps that would otherwise pass it through a wide interface.

Pure functions, no I/O, no Django, no queue: the Celery task in
``thumbnails.tasks`` fetches and stores, this module only computes, so every
behaviour here is testable on images a test builds in memory.

How one call works (``render``):
1. ``probe`` reads the header only: format allowed, pixel count within the
   limit. Nothing is decoded before that check, so a decompression bomb (a
   tiny PNG declaring 30000x30000) is refused without allocating its pixels.
2. Decode once, as small as the largest rendition allows:
   - JPEG: ``draft`` asks libjpeg to decode at 1/2, 1/4 or 1/8 scale (DCT
     shrink-on-load) to the smallest size that still covers the largest
     rendition, which is most of the speed on large photos.
   - Progressive JPEG: libjpeg entropy-decodes every scan whatever the DCT
     scale, most of the time on a large photo. ``_progressive_subset``
     leaves out the scans a scaled decode does not need: at 1/8 every AC
     scan (same pixels, bit for bit), at 1/4 the refinement passes and the
     higher luma band (an approximation, judged by SSIM in the tests).
   - 8-bit grey/RGB/RGBA PNG: libspng (``pyspng``) decodes about 1.7x faster
     than Pillow's zlib decoder; other PNGs (palette, grey+alpha, 16-bit,
     tRNS, animated) use Pillow.
3. The decoded frame is normalised once: first frame of an animation, ICC
   profile converted to sRGB (one LittleCMS transform per profile, cached),
   CMYK/YCCK to RGB, 16-bit and palette modes to 8-bit, EXIF orientation
   applied.
4. Renditions are made largest first, each from the smallest result made so
   far that still covers it (a cascade), with a box ``reduce`` step followed
   by LANCZOS for the last step, so quality stays while cost falls.
5. Each rendition is encoded without any metadata (no EXIF, GPS, XMP): JPEG
   for opaque images, PNG for images with real transparency.

Animated GIF/WebP/PNG: the first frame is used.
"""

from __future__ import annotations

import functools
import io
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pyspng
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
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBX", "RGBA", "CMYK", "I", "F"})


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


def _orientation(im: Image.Image, data: bytes) -> int:
    if im.format == "PNG" and "exif" not in im.info and b"eXIf" not in data:
        # Pillow's PNG getexif() decodes the whole image to look for an eXIf
        # chunk after the pixels; there is none anywhere in the file.
        return 1
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


def _colour_grid() -> Image.Image:
    """Every combination of 17 levels (0, 16, ..., 255) per channel: 4913 RGB pixels."""
    levels = np.minimum(np.arange(17) * 16, 255).astype(np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return Image.fromarray(np.stack([r, g, b], axis=-1).reshape(1, -1, 3), "RGB")


_COLOUR_GRID = _colour_grid()


@functools.lru_cache(maxsize=16)
def _to_srgb(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform | None:
    """The LittleCMS transform from the embedded profile ``icc`` to sRGB, built once per profile.

    Building one costs about as much as applying it to a thumbnail-sized
    image, and most photos from one camera or editor embed the same profile.
    NOCACHE: lcms2 skips its one-pixel cache, which is what makes one
    transform safe to share between threads.

    None when the profile is sRGB in all but its bytes (many photos embed an
    sRGB profile): the transform moves no colour of a 17-level grid by more
    than one level, LittleCMS' own rounding, so it is not applied.
    """
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    transform = ImageCms.buildTransform(
        src, _SRGB_PROFILE, in_mode, out_mode, ImageCms.Intent.PERCEPTUAL, ImageCms.Flags.NOCACHE
    )
    if in_mode == out_mode and in_mode in ("RGB", "RGBA"):
        grid = _COLOUR_GRID.convert(in_mode)
        moved = np.abs(np.asarray(transform.apply(grid).convert("RGB"), dtype=np.int16) - np.asarray(_COLOUR_GRID))
        if int(moved.max()) <= 1:
            return None
    return transform


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
                cmyk_to_srgb = _to_srgb(icc, im.mode, "RGB")
                im = cmyk_to_srgb.apply(im) if cmyk_to_srgb else im.convert("RGB")
                icc = None
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
                icc = None
        else:
            im = im.convert("RGB")
            icc = None
    elif mode == "RGBX":  # RGB decoded by libspng, sharing its array
        im = im.convert("RGB")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    if icc and im.mode in ("RGB", "RGBA"):
        try:
            to_srgb = _to_srgb(icc, im.mode, im.mode)
            if to_srgb is not None:
                im = to_srgb.apply(im)
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


# --- progressive JPEG at 1/4 and 1/8 scale ---------------------------------------
# A progressive JPEG sends its coefficients in scans: first the DC (each 8x8
# block's mean), then the AC coefficients in bands and in bit planes. A
# baseline JPEG must be entropy-decoded in full whatever the DCT scale (its AC
# codes sit between the DC codes); in a progressive one, the scans a scaled
# decode does not need can be left out of the file before libjpeg sees it.
#
# 1/8 (exact): libjpeg computes each output pixel of a full-resolution
# component from its block's DC coefficient alone (a 1x1 inverse DCT), so
# that component's AC scans are never read. Left out entirely, libjpeg would
# "smooth" the blocks (it estimates missing AC coefficients from neighbouring
# DC values, changing the pixels); so each is replaced by a scan of a few
# bytes saying "no AC coefficient in any block", and the pixels come out
# exactly as a full decode at 1/8 gives them. A component subsampled by two
# in both axes (4:2:0 chroma) is decoded at 2x2 per block, which reads AC
# coefficients: it keeps its AC scans.
#
# 1/4 (approximate): a 2x2 inverse DCT per block is dominated by the lowest
# AC coefficients. The file keeps its DC scans and the first pass of each
# component's lowest band (spectral start <= 5: libjpeg's default script sends
# luma 1-5 and chroma 1-63 there, two bits short of full precision at most);
# the higher luma band and every refinement pass, about three quarters of the
# bytes, are left out, and libjpeg's block smoothing fills in: an
# approximation, in fine detail at the 1/4 grid, so used only when LANCZOS
# then reduces by 1.5x or more (``_progressive_scale``). Against a slow
# full-resolution LANCZOS reference it then scores within 0.007 SSIM of a
# full decode at 1/4 (sometimes higher: the full 2x2 inverse DCT aliases), at
# a quarter to two thirds of the time (docs/engine.md). A file that does not
# send each component's first AC coefficients this early, to within two
# bits, is decoded in full.
_EARLY_BAND_START = 5  # a first-pass AC scan starting at or below this is kept at 1/4
_EARLY_MAX_SHIFT = 2  # its coefficients may lack at most this many low bits

# Where a scan's entropy-coded data ends: 0xFF followed by anything but a
# stuffed zero, a restart marker or a fill byte.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_SOF_PROGRESSIVE_HUFFMAN = 0xC2
_SOS, _DRI, _EOI = 0xDA, 0xDD, 0xD9
# Real files have tens of segments; a file of many tiny ones is left to libjpeg
# rather than walked here segment by segment.
_MAX_SEGMENTS = 2000

# An AC Huffman table whose 15 symbols are the end-of-band runs EOB0..EOB14
# (runs of 1 to 32767 blocks), each with a 4-bit code (0000 to 1110).
_EOB_TABLE = 3
_EOB_DHT = (
    b"\xff\xc4\x00\x22"
    + bytes([0x10 | _EOB_TABLE])  # class 1 (AC), table 3
    + bytes([0, 0, 0, 15] + [0] * 12)  # 15 codes of 4 bits
    + bytes(n << 4 for n in range(15))
)


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]] | None:
    """``(marker, start, end)`` of each segment after SOI, up to and including EOI.

    A scan's segment includes its entropy-coded data. None when the stream
    does not parse or ends before EOI (truncated): the caller then decodes
    the original bytes, which reports the damage as before.
    """
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    segments: list[tuple[int, int, int]] = []
    while pos + 1 < n and len(segments) < _MAX_SEGMENTS:
        if data[pos] != 0xFF:
            return None
        while pos + 1 < n and data[pos + 1] == 0xFF:  # fill bytes
            pos += 1
        if pos + 1 >= n:
            return None
        marker = data[pos + 1]
        if marker == _EOI:
            segments.append((marker, pos, pos + 2))
            return segments
        if marker in _STANDALONE_MARKERS or pos + 4 > n:
            return None
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == _SOS:
            found = _JPEG_MARKER.search(data, end)
            if found is None:
                return None
            end = found.start()
        if end > n:
            return None
        segments.append((marker, pos, end))
        pos = end
    return None


def _empty_ac_scan(component: int, blocks: int, restart_interval: int) -> bytes:
    """A first AC scan (coefficients 1 to 63, full precision) of one component
    in which every block is part of an end-of-band run: no AC coefficients."""
    out = bytearray(b"\xff\xda\x00\x08" + bytes([1, component, _EOB_TABLE, 1, 63, 0]))
    interval = restart_interval or blocks
    for index, first in enumerate(range(0, blocks, interval)):
        if index:
            out += bytes([0xFF, 0xD0 + (index - 1) % 8])  # RSTn between intervals
        bits = 0
        nbits = 0
        left = min(interval, blocks - first)
        while left:
            run = min(left, 32767)
            size = run.bit_length() - 1  # EOBn: a run of 2**n plus n extra bits
            bits = (bits << (4 + size)) | (size << size) | (run - (1 << size))
            nbits += 4 + size
            left -= run
        pad = -nbits % 8  # pad with 1-bits to a byte
        bits = (bits << pad) | ((1 << pad) - 1)
        out += ((bits).to_bytes((nbits + pad) // 8, "big")).replace(b"\xff", b"\xff\x00")
    return bytes(out)


def _progressive_subset(data: bytes, scale: int) -> bytes | None:
    """The progressive JPEG ``data`` reduced to what a decode at 1/``scale`` (8 or 4) reads.

    None when ``data`` is not a complete progressive Huffman JPEG that this
    understands, or nothing can be left out; the caller then decodes
    ``data`` itself.
    """
    try:
        return _leave_out_scans(data, scale)
    except IndexError:  # a segment shorter than its fields
        return None


def _leave_out_scans(data: bytes, scale: int) -> bytes | None:
    segments = _jpeg_segments(data)
    if segments is None:
        return None
    parts = [data[:2]]
    width = height = h_max = v_max = 0
    components: list[tuple[int, int, int]] = []  # (id, h, v) sampling factors
    keep_ac: set[int] = set()  # at 1/8: components whose AC scans are read
    early: dict[int, int] = {}  # at 1/4: component -> fewest low bits missing from its coefficients 1 and 2
    restart_interval = 0
    left_out = 0
    for marker, start, end in segments:
        if marker in _SOF_MARKERS:
            if marker != _SOF_PROGRESSIVE_HUFFMAN or components or data[start + 4] != 8:
                return None
            height = int.from_bytes(data[start + 5 : start + 7], "big")
            width = int.from_bytes(data[start + 7 : start + 9], "big")
            count = data[start + 9]
            for i in range(count):
                sampling = data[start + 11 + 3 * i]
                components.append((data[start + 10 + 3 * i], sampling >> 4, sampling & 15))
            if not width or not height or not components or end - start != 10 + 3 * count:
                return None
            if len({c[0] for c in components}) != count or min(min(c[1], c[2]) for c in components) < 1:
                return None
            h_max = max(c[1] for c in components)
            v_max = max(c[2] for c in components)
            # libjpeg (jdmaster.c) scales a component's inverse DCT up instead
            # of upsampling it when it is subsampled by two or more in both
            # axes: at 1/8 that component is decoded at 2x2 per block and
            # needs its AC coefficients.
            keep_ac = {cid for cid, h, v in components if h_max % (2 * h) == 0 and v_max % (2 * v) == 0}
        elif marker == _DRI:
            restart_interval = int.from_bytes(data[start + 4 : start + 6], "big")
        elif marker == _SOS:
            if not components:
                return None
            in_scan = data[start + 4]
            spectral_start, spectral_end, shifts = data[start + 5 + 2 * in_scan : start + 8 + 2 * in_scan]
            if spectral_start != 0:  # an AC scan: always of one component
                component = data[start + 5]
                if scale == 8 and component not in keep_ac:
                    left_out += 1
                    continue
                if scale == 4:
                    first_pass, low_bits = shifts >> 4 == 0, shifts & 15
                    if not first_pass or spectral_start > _EARLY_BAND_START:
                        left_out += 1
                        continue
                    if spectral_start == 1 and spectral_end >= 2:
                        early[component] = min(early.get(component, 99), low_bits)
        elif marker == _EOI:
            if scale == 4 and any(early.get(cid, 99) > _EARLY_MAX_SHIFT for cid, _, _ in components):
                return None  # some component's first AC coefficients come late: decode in full
            if scale == 8:
                parts.append(_EOB_DHT)
                for cid, h, v in components:
                    if cid not in keep_ac:
                        blocks_w = math.ceil(math.ceil(width * h / h_max) / 8)
                        blocks_h = math.ceil(math.ceil(height * v / v_max) / 8)
                        parts.append(_empty_ac_scan(cid, blocks_w * blocks_h, restart_interval))
        parts.append(data[start:end])
    return b"".join(parts) if left_out else None


# --- PNG -----------------------------------------------------------------------
_PNG_COLOUR_MODES = {0: "L", 2: "RGB", 6: "RGBA"}  # colour type -> mode (libspng has no 8-bit LA output)


def _decode_png_spng(data: bytes, im: Image.Image) -> Image.Image | None:
    """An 8-bit grey, RGB or RGBA PNG decoded by libspng, or None for Pillow to decode.

    Pillow keeps palette, grey+alpha, 1/2/4/16-bit, tRNS (a transparent
    colour) and animated PNGs, and any file libspng refuses (Pillow is more
    lenient, or reports the damage as before).
    """
    if len(data) < 29 or data[12:16] != b"IHDR":
        return None
    depth, colour = data[24], data[25]
    mode = _PNG_COLOUR_MODES.get(colour)
    if depth != 8 or mode != im.mode or "transparency" in im.info or getattr(im, "n_frames", 1) > 1:
        return None
    try:
        # RGB as RGBA (alpha 255): Pillow keeps RGB as 4 bytes a pixel, so an
        # RGBX image can share the array's memory instead of copying it.
        pixels = pyspng.load(data, "RGBA" if mode == "RGB" else mode)
    except (RuntimeError, ValueError, MemoryError):
        return None
    if pixels.shape[:2] != (im.height, im.width) or pixels.dtype != np.uint8:
        return None
    raw = "RGBX" if mode == "RGB" else mode
    out = Image.frombuffer(raw, im.size, pixels, "raw", raw, 0, 1)
    out.info = im.info
    return out


def _progressive_scale(im: Image.Image, source: Probe, need_w: int, need_h: int) -> int:
    """8 or 4: the DCT scale at which a progressive JPEG is decoded from some of its scans; 0: not."""
    if source.format != "JPEG" or not im.info.get("progressive") or min(source.width, source.height) < 8:
        return 0
    # 1/8 only when it leaves at least a factor of two for LANCZOS: a 1/8
    # decode is a box filter, which aliases fine texture when it is resized
    # by less than that (SSIM 0.957 against 0.998 from 1/4 on the
    # benchmark's 16 MB progressive photo).
    if -(-source.width // 8) >= 2 * need_w and -(-source.height // 8) >= 2 * need_h:
        return 8
    # The early scans' approximation (coefficients two bits short, smoothed)
    # is fine detail at the 1/4 grid: LANCZOS must reduce by 1.5x or more to
    # filter it out. With less, fine texture loses up to 0.017 SSIM against a
    # full decode at 1/4; from 1.5x, at most 0.007 (docs/engine.md).
    if 2 * -(-source.width // 4) >= 3 * need_w and 2 * -(-source.height // 4) >= 3 * need_h:
        return 4
    return 0


def _decode(data: bytes, im: Image.Image, source: Probe, need_w: int, need_h: int) -> Image.Image:
    """Decode ``im`` (opened from ``data``) once, as small as ``need_w`` x ``need_h`` allows."""
    if source.format in ("JPEG", "MPO"):
        mode = im.mode if im.mode in ("L", "RGB", "CMYK") else None
        scale = _progressive_scale(im, source, need_w, need_h)
        subset = _progressive_subset(data, scale) if scale else None
        if subset is not None:
            try:
                small = Image.open(io.BytesIO(subset))
                small.draft(mode, (source.width // scale, source.height // scale))
                small.load()
            except (OSError, SyntaxError, ValueError, EOFError):
                pass  # not what this expected: decode the original as before
            else:
                im.close()
                return small
        im.draft(mode, (need_w, need_h))
    elif source.format == "PNG":
        decoded = _decode_png_spng(data, im)
        if decoded is not None:
            im.close()
            return decoded
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im.load()
    return im


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

    orientation = _orientation(im, data)
    swap = orientation in (5, 6, 7, 8)
    up_w, up_h = (source.height, source.width) if swap else (source.width, source.height)

    try:
        # 2. Shrink-on-load: the largest size any spec needs, in stored (not upright) axes.
        need_w = max(_needed_size(up_w, up_h, s)[0] for s in specs)
        need_h = max(_needed_size(up_w, up_h, s)[1] for s in specs)
        if swap:
            need_w, need_h = need_h, need_w
        im = _decode(data, im, source, need_w, need_h)
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
