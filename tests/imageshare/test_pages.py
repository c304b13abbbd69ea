"""The web pages: log in, upload through the form, see the image listed."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imageshare.images.models import Image
from tests.support.images import make_image

pytestmark = pytest.mark.django_db
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_the_home_page_asks_anonymous_visitors_to_log_in(client):
    resp = client.get("/")
    assert resp.status_code == 302 and resp["Location"].startswith("/login/")


def test_a_user_logs_in_uploads_and_sees_the_image_pending(client, owner, queue):
    resp = client.post("/login/", {"username": "owner", "password": "owner-pass-123"})
    assert resp.status_code == 302
    resp = client.post(
        "/upload",
        {"image": SimpleUploadedFile("cat.jpg", make_image(900, 600), "image/jpeg")},
        follow=True,
        HTTP_ACCEPT=BROWSER,
    )
    assert resp.status_code == 200
    page = resp.content.decode()
    assert "Uploaded cat.jpg" in page
    image = Image.objects.get(owner=owner)
    assert f'data-image-id="{image.id}"' in page and 'data-status="pending"' in page


def test_a_bad_file_gets_a_message_on_the_page_not_a_500(client, owner, queue):
    client.force_login(owner)
    resp = client.post(
        "/upload", {"image": SimpleUploadedFile("x.jpg", b"not really a jpeg", "image/jpeg")}, HTTP_ACCEPT=BROWSER
    )
    assert resp.status_code == 415
    assert "not an image in a supported format" in resp.content.decode()
    assert Image.objects.count() == 0


def test_the_image_page_is_404_for_another_user(client, owner, other_user, queue):
    client.force_login(owner)
    client.post(
        "/upload", {"image": SimpleUploadedFile("cat.jpg", make_image(300, 200), "image/jpeg")}, HTTP_ACCEPT=BROWSER
    )
    image = Image.objects.get(owner=owner)
    assert client.get(f"/images/{image.id}").status_code == 200
    client.force_login(other_user)
    assert client.get(f"/images/{image.id}").status_code == 404


def test_the_pages_stylesheet_and_script_are_served(client):
    for path in ("/static/imageshare/site.css", "/static/imageshare/site.js"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert b"".join(resp.streaming_content if resp.streaming else [resp.content])


def test_it_refuses_a_form_post_declaring_more_than_the_limit_like_the_other_doors(client, owner, queue, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    client.force_login(owner)
    photo = SimpleUploadedFile("cat.jpg", make_image(32, 32), "image/jpeg")  # within the limit itself
    padding = "x" * 70_000  # the body as a whole declares more than the limit and the multipart overhead
    resp = client.post("/upload", {"image": photo, "note": padding}, HTTP_ACCEPT=BROWSER)
    assert resp.status_code == 413
    assert "cat.jpg: The upload is larger than the limit of 2048 bytes." in resp.content.decode()
    assert Image.objects.count() == 0


def test_it_allows_each_photo_of_a_multi_file_form_post_its_own_limit(client, owner, queue, settings):
    # Without JavaScript the form posts every chosen photo at once: the
    # declared length is checked against the limit of each file sent (three
    # photos near the limit are more than one limit and its overhead).
    settings.MAX_UPLOAD_BYTES = 40_000
    client.force_login(owner)
    photos = [SimpleUploadedFile(f"p{i}.png", make_image(100, 100, fmt="PNG") + b"\0" * 38_000) for i in range(3)]
    resp = client.post("/upload", {"image": photos}, HTTP_ACCEPT=BROWSER)
    assert resp.status_code == 302, resp.content
    assert Image.objects.filter(owner=owner).count() == 3
