"""Images built in memory for the tests: no test depends on files on disk."""

import io

from PIL import Image


def make_image(width=800, height=600, mode="RGB", fmt="JPEG", color=(200, 30, 30), **save) -> bytes:
    im = Image.new(mode, (width, height), color)
    buf = io.BytesIO()
    im.save(buf, fmt, **save)
    return buf.getvalue()


def two_halves_jpeg(width=1200, height=800, orientation=None) -> bytes:
    """Left half red, right half blue; optionally an EXIF orientation tag."""
    im = Image.new("RGB", (width, height), (220, 20, 20))
    im.paste((20, 20, 220), (width // 2, 0, width, height))
    buf = io.BytesIO()
    kwargs = {"quality": 90}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    im.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def near(color, expected, tol=40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(color[:3], expected[:3], strict=True))
