"""Originals lose their location and personal metadata, not their pixels, orientation or colour profile."""

import io

import pytest
from PIL import Image

from imageshare.images.metadata import scrub

GPS_IFD = 0x8825
ARTIST, ORIENTATION = 0x013B, 0x0112


def camera_jpeg() -> bytes:
    image = Image.new("RGB", (64, 48), (10, 200, 30))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ARTIST] = "Alice Smith"
    exif[GPS_IFD] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, icc_profile=b"\x00" * 128, comment=b"taken at 12 Acacia Avenue")
    return out.getvalue()


def test_it_strips_location_and_names_from_a_jpeg_but_keeps_orientation_and_profile():
    original = camera_jpeg()
    assert b"Acacia" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)
    cleaned = scrub(original, "image/jpeg")
    image = Image.open(io.BytesIO(cleaned))
    exif = image.getexif()
    assert not exif.get_ifd(GPS_IFD) and ARTIST not in exif and b"Alice" not in cleaned and b"Acacia" not in cleaned
    assert exif[ORIENTATION] == 6
    assert image.info.get("icc_profile") == b"\x00" * 128


def test_a_scrubbed_jpeg_has_the_same_pixels():
    original = camera_jpeg()
    before = Image.open(io.BytesIO(original)).tobytes()
    assert Image.open(io.BytesIO(scrub(original, "image/jpeg"))).tobytes() == before


def test_it_strips_text_and_location_from_a_png():
    image = Image.new("RGBA", (20, 10), (1, 2, 3, 128))
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    exif[GPS_IFD] = {1: "N", 2: (1.0, 2.0, 3.0)}
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Alice Smith")
    out = io.BytesIO()
    image.save(out, "PNG", exif=exif, pnginfo=info)
    cleaned = scrub(out.getvalue(), "image/png")
    result = Image.open(io.BytesIO(cleaned))
    assert b"Alice" not in cleaned and not result.getexif().get_ifd(GPS_IFD)
    assert result.getexif()[ORIENTATION] == 3
    assert result.tobytes() == image.tobytes()


def test_garbage_is_returned_untouched():
    assert scrub(b"\xff\xd8\x00garbage", "image/jpeg") == b"\xff\xd8\x00garbage"
    assert scrub(b"GIF89a...", "image/gif") == b"GIF89a..."


@pytest.mark.django_db
def test_a_public_sites_stored_original_has_no_location(owner_client, queue, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.IMAGESHARE_MODE = "open"
    settings.STRIP_ORIGINAL_METADATA = True
    resp = owner_client.post(
        "/api/v1/images",
        {"image": SimpleUploadedFile("a.jpg", camera_jpeg(), "image/jpeg")},
        HTTP_ACCEPT="application/json",
    )
    assert resp.status_code == 202
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{resp.json()['id']}")["Body"].read()
    assert b"Alice" not in stored and not Image.open(io.BytesIO(stored)).getexif().get_ifd(GPS_IFD)
