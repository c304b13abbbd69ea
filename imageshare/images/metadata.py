"""Strip location and other personal metadata from an original before it is stored.

A phone photo carries where it was taken (GPS), the camera's serial number,
the owner's name and more. When images are public (open mode), the original
would hand all of it to anyone with the link. ``scrub`` rewrites only the
metadata segments and copies the compressed pixels byte for byte, so the
original loses no quality; it keeps what display needs: the orientation
(EXIF 0x0112) and the colour profile (JPEG APP2 ICC, PNG iCCP/sRGB/gAMA/cHRM).

- JPEG: the EXIF segment is rebuilt with the orientation (and colour space)
  only; XMP (APP1), Photoshop/IPTC (APP13) and comments go.
- PNG: eXIf is rebuilt likewise; text chunks (tEXt, zTXt, iTXt: author,
  XMP) go.
- Other formats are stored as uploaded (GIF and WebP from cameras rarely
  carry location; named as a gap in docs).

Hand-written because Pillow can only write metadata by re-encoding JPEG
pixels, and the small lossless tools on PyPI are unmaintained.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
COLOR_SPACE = 0xA001

# JPEG markers that carry personal metadata.
_APP1, _APP13, _COM, _SOS = 0xE1, 0xED, 0xFE, 0xDA
_EXIF_ID = b"Exif\x00\x00"


def scrub(data: bytes, mime: str) -> bytes:
    """``data`` without personal metadata, pixels untouched; unknown or malformed input is returned as is."""
    try:
        if mime == "image/jpeg":
            return _scrub_jpeg(data)
        if mime == "image/png":
            return _scrub_png(data)
    except (ValueError, IndexError, struct.error):
        pass  # the engine decides about a malformed file; we never make it worse
    return data


def _kept_exif(exif_payload: bytes) -> bytes | None:
    """A fresh EXIF block (with its "Exif\\0\\0" id) holding only the orientation and colour space."""
    old = Image.Exif()
    old.load(exif_payload)
    new = Image.Exif()
    if ORIENTATION in old:
        new[ORIENTATION] = old[ORIENTATION]
    color_space = old.get_ifd(EXIF_IFD).get(COLOR_SPACE)
    if color_space is not None:
        new.get_ifd(EXIF_IFD)[COLOR_SPACE] = color_space
    return new.tobytes() if len(new) or color_space is not None else None


def _scrub_jpeg(data: bytes) -> bytes:
    """1. Copy SOI. 2. Walk the segments up to SOS: drop or rebuild the personal ones. 3. Copy the rest."""
    if data[:2] != b"\xff\xd8":
        return data
    out = [data[:2]]
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("not at a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _SOS:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos : pos + 2 + length]
        payload = segment[4:]
        if marker == _APP1 and payload.startswith(_EXIF_ID):
            kept = _kept_exif(payload[len(_EXIF_ID) :])
            if kept is not None:
                out.append(b"\xff\xe1" + struct.pack(">H", len(kept) + 2) + kept)
        elif marker in (_APP1, _APP13, _COM):
            pass  # XMP, Photoshop/IPTC, comments
        else:
            out.append(segment)
        pos += 2 + length
    out.append(data[pos:])
    return b"".join(out)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt"}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _scrub_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        return data
    out = io.BytesIO()
    out.write(_PNG_SIGNATURE)
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunk = data[pos : pos + 12 + length]
        if kind == b"eXIf":
            kept = _kept_exif(chunk[8 : 8 + length])
            if kept is not None:
                out.write(_png_chunk(b"eXIf", kept[len(_EXIF_ID) :]))
        elif kind not in _PNG_TEXT:
            out.write(chunk)
        pos += 12 + length
        if kind == b"IEND":
            break
    return out.getvalue()
