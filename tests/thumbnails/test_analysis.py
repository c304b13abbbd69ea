"""The analysis task's I/O around the processors, on in-process fake S3; the seed upload's wait for it.

The task function is called directly (no broker), like tests/thumbnails/test_tasks.py.
"""

import io
import threading
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from imageshare.images import seed
from imageshare.images.models import Analysis, Image
from imageshare.images.payloads import analysis_payload, face_counts
from tests.conftest import stored_image
from tests.support.images import make_image
from thumbnails.analysis import analyse_image
from thumbnails.processors import faces

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_mask_classifier(monkeypatch):
    """What the task stores is under test here, not the mask model (thumbnails/processors/masks.py)."""
    monkeypatch.setattr(faces, "mask_classifier", lambda: lambda crops: faces.NoMasks())


PORTRAIT = (Path(__file__).resolve().parents[1] / "support" / "portrait_grace_hopper.jpg").read_bytes()


def big_portrait() -> bytes:
    """The portrait at 4x (2048x2400): analysed at 1024 px, its boxes must come back in original pixels."""
    im = PILImage.open(io.BytesIO(PORTRAIT))
    buf = io.BytesIO()
    im.resize((im.width * 4, im.height * 4)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_it_stores_the_faces_and_the_annotated_copy(aws, owner):
    image = stored_image(owner, big_portrait())
    result = analyse_image.run(str(image.id))
    assert result["faces"] == 1
    analysis = Analysis.objects.get(image=image)
    assert analysis.status == "done" and analysis.num_faces == 1
    assert analysis.num_masked is None and analysis.num_unmasked is None  # no classifier yet
    assert analysis.mask_reason == "no mask classifier installed"
    x, y, w, h = analysis.faces[0]["box"]
    assert 720 <= w <= 1120 and abs(x + w / 2 - 4 * 265) < 160  # original (4x) pixels
    assert analysis.model.startswith("opencv-haar") and analysis.version
    assert {"fetch", "decode", "detect", "classify", "total"} <= set(analysis.timings)
    annotated = image.renditions.get(name="annotated")
    assert annotated.key == f"renditions/{image.id}/annotated"
    body = aws["s3"].get_object(Bucket=aws["bucket"], Key=annotated.key)
    assert body["ContentType"] == "image/jpeg"
    assert PILImage.open(io.BytesIO(body["Body"].read())).size == (annotated.width, annotated.height) == (874, 1024)


def test_running_it_twice_is_harmless(aws, owner):
    image = stored_image(owner, PORTRAIT)
    analyse_image.run(str(image.id))
    assert analyse_image.run(str(image.id)) == {"image": str(image.id), "skipped": "done"}
    assert Analysis.objects.filter(image=image).count() == 1 and image.renditions.count() == 1


def test_a_photo_without_people_has_no_faces(aws, owner):
    image = stored_image(owner, make_image(1200, 800))
    analyse_image.run(str(image.id))
    analysis = Analysis.objects.get(image=image)
    assert analysis.num_faces == 0 and analysis.faces == []


def test_a_corrupt_original_records_a_failed_analysis(aws, owner):
    image = stored_image(owner, make_image(400, 300))
    default_storage.delete(image.original_key)
    default_storage.save(image.original_key, ContentFile(make_image(400, 300)[:200]))
    analyse_image.run(str(image.id))
    analysis = Analysis.objects.get(image=image)
    assert analysis.status == "failed" and analysis.error
    assert face_counts(image)["num_faces"] is None


def test_a_deleted_image_is_skipped(aws, owner):
    image = stored_image(owner, PORTRAIT)
    image_id = str(image.id)
    image.delete()
    assert analyse_image.run(image_id) == {"image": image_id, "skipped": "missing"}


def test_the_payload_shows_the_analysis_and_the_seed_counts(aws, owner):
    image = stored_image(owner, PORTRAIT)
    assert analysis_payload(image) is None
    assert face_counts(image) == {
        "num_faces": None,
        "num_masked": None,
        "num_unmasked": None,
        "mask_reason": "The analysis has not finished yet.",
    }
    analyse_image.run(str(image.id))
    image = Image.objects.get(pk=image.pk)
    body = analysis_payload(image)
    assert body["num_faces"] == 1 and body["annotated_url"].endswith("/annotated")
    assert body["model"]["name"].startswith("opencv-haar")
    assert face_counts(image) == {
        "num_faces": 1,
        "num_masked": None,
        "num_unmasked": None,
        "mask_reason": "no mask classifier installed",
    }


@pytest.mark.django_db(transaction=True)
def test_the_seed_upload_waits_for_the_result_then_gives_up(aws, owner, settings):
    settings.ANALYSIS_WAIT_SECONDS = 1
    image = stored_image(owner, PORTRAIT)
    assert seed._wait_for_analysis(image) is None  # nobody analyses it: gives up after a second
    timer = threading.Timer(0.3, lambda: analyse_image.run(str(image.id)))
    timer.start()
    settings.ANALYSIS_WAIT_SECONDS = 10
    analysis = seed._wait_for_analysis(image)
    timer.join()
    assert analysis is not None and analysis.num_faces == 1


@pytest.mark.parametrize(
    "counts, group",
    [
        (None, "not-analysed"),
        ((0, None, None), "no-faces"),
        ((2, 2, 0), "all-masked"),
        ((2, 0, 2), "none-masked"),
        ((3, 1, 2), "some-masked"),
        ((1, None, None), "masks-unknown"),
    ],
)
def test_the_history_page_puts_each_image_in_its_list(aws, owner, owner_client, counts, group):
    image = stored_image(owner, make_image(300, 200))
    image.original_name = "grouped.jpg"
    image.save()
    if counts is not None:
        faces_n, masked, unmasked = counts
        Analysis.objects.create(image=image, status="done", num_faces=faces_n, num_masked=masked, num_unmasked=unmasked)
    html = owner_client.get("/gallery").content.decode()
    section = html.split(f'data-group="{group}"', 1)[1].split("</ul>", 1)[0]
    assert "grouped.jpg" in section
    page = owner_client.get(f"/images/{image.id}").content.decode()
    assert ("Not analysed yet" in page) == (counts is None)
    if counts is not None:
        assert f"Faces found: {counts[0]}" in page
