"""Direct uploads through Django's client and in-process moto: presign, the file into S3, finalize.

The client's POST to S3 is stood in for by a put_object to the presigned key
(tests/integration/test_direct_upload.py does the real form POST to moto's
server). Also here: the versioned rendition URLs of open mode and
``links.rendition_cache_control``.
"""

import io

import pytest
from django.test import Client
from PIL import Image as PILImage

from imageshare.images.models import Image, Rendition
from tests.imageshare.test_metadata import GPS_IFD, camera_jpeg
from tests.support.images import make_image

pytestmark = pytest.mark.django_db


def presign(client, **body):
    resp = client.post("/api/v1/uploads", body, content_type="application/json", HTTP_ACCEPT="application/json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def put(aws, key, data, content_type="image/jpeg"):
    aws["s3"].put_object(Bucket=aws["bucket"], Key=key, Body=data, ContentType=content_type)


def exists(aws, key) -> bool:
    return bool(aws["s3"].list_objects_v2(Bucket=aws["bucket"], Prefix=key).get("Contents"))


def finalize(client, presigned, **body):
    return client.post(presigned["finalize_url"], body, content_type="application/json", HTTP_ACCEPT="application/json")


def error(resp, status, code):
    assert resp.status_code == status, resp.content
    assert resp.json() == {"error": {"code": code, "message": resp.json()["error"]["message"]}}


def test_presign_answers_a_post_policy_for_a_per_user_key(owner_client, owner, queue, settings):
    body = presign(owner_client, content_type="image/jpeg", size=1000)
    assert body["key"] == f"incoming/{owner.pk}/{body['upload_id']}"
    assert body["fields"]["key"] == body["key"]
    assert body["fields"]["Content-Type"] == "image/jpeg"
    assert "policy" in body["fields"] and "x-amz-signature" in body["fields"]
    assert body["max_bytes"] == settings.MAX_UPLOAD_BYTES
    assert body["finalize_url"].endswith(f"/api/v1/uploads/{body['upload_id']}/finalize")
    policy = _policy(body)
    assert ["content-length-range", 1, settings.MAX_UPLOAD_BYTES] in policy["conditions"]
    assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    # Without a type, any image/ type is allowed by the policy (finalize decides the format).
    assert ["starts-with", "$Content-Type", "image/"] in _policy(presign(owner_client))["conditions"]
    assert presign(owner_client)["upload_id"] != body["upload_id"]


def _policy(body):
    import base64
    import json

    return json.loads(base64.b64decode(body["fields"]["policy"]))


def test_presign_refuses_a_declared_size_over_the_limit_and_a_type_not_an_image(owner_client, queue, settings):
    too_big = {"size": settings.MAX_UPLOAD_BYTES + 1}  # over the schema's maximum: a bad request
    resp = owner_client.post("/api/v1/uploads", too_big, content_type="application/json")
    error(resp, 400, "invalid")
    assert str(settings.MAX_UPLOAD_BYTES) in resp.json()["error"]["message"]
    settings.MAX_UPLOAD_BYTES = 5000  # the limit is read per request, not fixed at import
    resp = owner_client.post("/api/v1/uploads", {"size": 5001}, content_type="application/json")
    error(resp, 400, "invalid")
    assert "5000" in resp.json()["error"]["message"]
    assert presign(owner_client, size=5000)["max_bytes"] == 5000
    settings.MAX_UPLOAD_BYTES = 10**9  # raised: a size over the old limit is fine now
    assert presign(owner_client, size=10**8)["max_bytes"] == 10**9
    resp = owner_client.post("/api/v1/uploads", {"content_type": "text/html"}, content_type="application/json")
    error(resp, 400, "invalid")


def test_finalize_makes_the_image_with_the_upload_id_and_queues_it(owner_client, queue):
    from thumbnails.tasks import make_renditions

    body = presign(owner_client)
    data = make_image(640, 480)
    put(queue, body["key"], data)
    resp = finalize(owner_client, body, name="holiday.jpg")
    assert resp.status_code == 202, resp.content
    image = resp.json()
    assert image["id"] == body["upload_id"] and image["status"] == "pending" and image["name"] == "holiday.jpg"
    assert (image["width"], image["height"], image["bytes"]) == (640, 480, len(data))
    assert not exists(queue, body["key"])  # the incoming object went; the original is a copy
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{image['id']}")
    assert stored["Body"].read() == data and stored["ContentType"] == "image/jpeg"
    make_renditions.run(image["id"])
    assert Image.objects.get(pk=image["id"]).status == "ready"


def test_a_second_finalize_answers_the_same_image(owner_client, queue):
    body = presign(owner_client)
    put(queue, body["key"], make_image())
    first = finalize(owner_client, body)
    again = finalize(owner_client, body)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Image.objects.filter(pk=body["upload_id"]).count() == 1


def test_another_users_upload_is_not_found_and_left_alone(owner_client, other_user, queue):
    body = presign(owner_client)
    put(queue, body["key"], make_image())
    other = Client()
    other.force_login(other_user)
    error(finalize(other, body), 404, "no_such_upload")
    assert exists(queue, body["key"])
    assert finalize(owner_client, body).status_code == 202
    error(finalize(other, body), 404, "no_such_upload")  # nor once it is an image


def test_finalize_before_the_file_is_sent_says_so(owner_client, queue):
    body = presign(owner_client)
    error(finalize(owner_client, body), 404, "no_such_upload")
    error(owner_client.post("/api/v1/uploads/not-a-uuid/finalize", {}, "application/json"), 404, "no_such_upload")


def test_an_object_over_the_limit_is_refused_and_removed(owner_client, queue, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    body = presign(owner_client)
    put(queue, body["key"], make_image(400, 400, quality=95))
    error(finalize(owner_client, body), 413, "too_large")
    assert not exists(queue, body["key"]) and not Image.objects.exists()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"<html>not an image</html>", 415, "unsupported_format"),
        (b"\xff\xd8\xff\xe0" + b"garbage" * 20, 400, None),
        (b"", 400, "empty_file"),
    ],
)
def test_not_an_image_is_refused_and_removed(owner_client, queue, data, status, code):
    body = presign(owner_client)
    put(queue, body["key"], data, "image/png")
    resp = finalize(owner_client, body)
    assert resp.status_code == status, resp.content
    assert set(resp.json()["error"]) == {"code", "message"}
    if code:
        assert resp.json()["error"]["code"] == code
    assert not exists(queue, body["key"]) and not Image.objects.exists()


def test_finalize_scrubs_the_original_like_the_multipart_door(owner_client, queue, settings):
    settings.STRIP_ORIGINAL_METADATA = True
    body = presign(owner_client)
    put(queue, body["key"], camera_jpeg())
    resp = finalize(owner_client, body)
    assert resp.status_code == 202, resp.content
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{body['upload_id']}")["Body"].read()
    assert b"Alice" not in stored and not PILImage.open(io.BytesIO(stored)).getexif().get_ifd(GPS_IFD)
    assert resp.json()["bytes"] == len(stored)
    assert not exists(queue, body["key"])


def test_the_quota_counts_at_finalize(owner_client, queue, settings):
    settings.USER_STORAGE_QUOTA_BYTES = 1000
    body = presign(owner_client)
    put(queue, body["key"], make_image(640, 480))
    error(finalize(owner_client, body), 413, "quota_exceeded")
    assert not exists(queue, body["key"])


def test_private_mode_refuses_anonymous_presign_and_finalize(client, queue):
    error(client.post("/api/v1/uploads", {}, content_type="application/json"), 401, "not_authenticated")
    import uuid

    error(client.post(f"/api/v1/uploads/{uuid.uuid4()}/finalize"), 401, "not_authenticated")


def test_open_mode_lets_anonymous_upload_directly(anon, owner_client, queue, open_mode):
    body = presign(anon)
    assert body["key"].startswith("incoming/anonymous/")
    put(queue, body["key"], make_image())
    resp = finalize(anon, body)
    assert resp.status_code == 202 and resp.json()["id"] == body["upload_id"]
    assert Image.objects.get(pk=body["upload_id"]).owner is None
    # An account finalizing an anonymous upload id is another owner: not found.
    error(finalize(owner_client, body), 404, "no_such_upload")


def test_the_backlog_refuses_presign_with_retry_after(owner_client, queue, settings, monkeypatch):
    from imageshare.images import uploads

    monkeypatch.setitem(uploads._backlog, "visible", 10**6)
    monkeypatch.setitem(uploads._backlog, "read_at", float("inf"))
    resp = owner_client.post("/api/v1/uploads", {}, content_type="application/json")
    error(resp, 503, "overloaded")
    assert resp["Retry-After"] == str(settings.UPLOAD_BACKLOG_RETRY_AFTER)


# --- versioned rendition URLs (open mode) ------------------------------------------------


def test_open_mode_rendition_urls_carry_a_version_that_changes_when_remade(owner_client, queue, open_mode):
    from thumbnails.tasks import make_renditions

    body = presign(owner_client)
    put(queue, body["key"], make_image())
    image_id = finalize(owner_client, body).json()["id"]
    pending = owner_client.get(f"/api/v1/images/{image_id}").json()
    assert "?v=" not in pending["urls"]["small"]  # nothing to version yet
    make_renditions.run(image_id)
    ready = owner_client.get(f"/api/v1/images/{image_id}").json()
    url = ready["urls"]["small"]
    assert "?v=" in url and ready["renditions"]["small"]["url"] == url
    rendition = Rendition.objects.get(image_id=image_id, name="small")
    rendition.save()  # re-made: auto_now moves created_at
    again = owner_client.get(f"/api/v1/images/{image_id}").json()["urls"]["small"]
    assert again.split("?v=")[0] == url.split("?v=")[0] and again != url


def test_private_mode_urls_have_no_version(owner_client, queue):
    body = presign(owner_client)
    put(queue, body["key"], make_image())
    image_id = finalize(owner_client, body).json()["id"]
    from thumbnails.tasks import make_renditions

    make_renditions.run(image_id)
    assert "?v=" not in owner_client.get(f"/api/v1/images/{image_id}").json()["urls"]["small"]


def test_rendition_cache_control_follows_the_mode(settings):
    from imageshare.images.links import rendition_cache_control

    settings.IMAGESHARE_MODE = "open"
    assert rendition_cache_control() == "public, max-age=31536000, s-maxage=86400, immutable"
    settings.IMAGESHARE_MODE = "private"
    assert rendition_cache_control() == settings.AWS_S3_OBJECT_PARAMETERS["CacheControl"]


@pytest.mark.parametrize("body", ['"a string"', "[1, 2]", "3"])
def test_a_body_that_is_not_an_object_is_a_bad_request(owner_client, queue, body):
    error(owner_client.post("/api/v1/uploads", body, content_type="application/json"), 400, "invalid")
    error(owner_client.post("/api/v1/uploads/x/finalize", body, content_type="application/json"), 400, "invalid")


def test_presign_and_finalize_read_json_only(owner_client, queue):
    error(owner_client.post("/api/v1/uploads", {"size": "12"}), 415, "unsupported_media_type")
    error(owner_client.post("/api/v1/uploads/x/finalize", {"name": "a"}), 415, "unsupported_media_type")
    assert owner_client.generic("POST", "/api/v1/uploads").status_code == 201  # no body at all: no fields


def test_a_url_upload_with_an_unclosed_ipv6_bracket_is_a_bad_request(owner_client, queue):
    """Found by schemathesis once the direct-upload operations moved its seed: 500 before."""
    resp = owner_client.post("/api/v1/images", {"url": "http://[::1/x.jpg"}, content_type="application/json")
    error(resp, 400, "bad_url")


def test_the_pages_may_connect_to_the_bucket_and_nowhere_else(owner_client, settings):
    """The upload page's script POSTs to the bucket: connect-src names its endpoints (not the CDN)."""
    policy = owner_client.get("/")["Content-Security-Policy"]
    connect = next(d for d in policy.split(";") if d.strip().startswith("connect-src")).split()[1:]
    assert connect[0] == "'self'"
    assert f"https://{settings.S3_BUCKET}.s3.amazonaws.com" in connect
    assert all(".amazonaws.com" in origin or origin.startswith("http://127.0.0.1") for origin in connect[1:])


def test_the_upload_form_names_the_presign_endpoint_for_its_script(owner_client):
    page = owner_client.get("/").content.decode()
    assert 'data-presign="/api/v1/uploads"' in page and 'enctype="multipart/form-data"' in page  # the fallback


def test_a_finalize_racing_another_answers_the_image_the_other_made(owner_client, owner, queue, monkeypatch):
    """The other finalize makes the image and removes the object between this one's check and its read."""
    import uuid

    from imageshare.images import direct

    body = presign(owner_client)
    put(queue, body["key"], make_image())
    real_read = direct._read

    def read_after_the_other_finalized(key, start, count):
        monkeypatch.setattr(direct, "_read", real_read)
        direct.finalize(owner, uuid.UUID(body["upload_id"]))  # the other request, to the end
        return real_read(key, start, count)  # the object is gone now

    monkeypatch.setattr(direct, "_read", read_after_the_other_finalized)
    image, created = direct.finalize(owner, uuid.UUID(body["upload_id"]))
    assert str(image.id) == body["upload_id"] and created is False


# --- finalize: what it writes, and the races it meets ---------------------------------------


def _grantees(aws, key):
    grants = aws["s3"].get_object_acl(Bucket=aws["bucket"], Key=key)["Grants"]
    return {(g["Grantee"].get("URI", g["Grantee"].get("ID")), g["Permission"]) for g in grants}


@pytest.mark.parametrize("scrub", [False, True])
def test_the_original_gets_the_storage_write_parameters_acl_included(owner_client, queue, settings, monkeypatch, scrub):
    """finalize writes the original as django-storages would (storage.write_parameters): AWS_DEFAULT_ACL too."""
    from django.core.files.storage import default_storage

    settings.STRIP_ORIGINAL_METADATA = scrub
    assert default_storage.default_acl is None  # (builds the lazy storage: patch the real one)
    monkeypatch.setattr(default_storage._wrapped, "default_acl", "public-read")
    body = presign(owner_client)
    put(queue, body["key"], camera_jpeg() if scrub else make_image())
    assert finalize(owner_client, body).status_code == 202
    original = f"originals/{body['upload_id']}"
    assert ("http://acs.amazonaws.com/groups/global/AllUsers", "READ") in _grantees(queue, original)
    head = queue["s3"].head_object(Bucket=queue["bucket"], Key=original)
    assert head["CacheControl"] == settings.AWS_S3_OBJECT_PARAMETERS["CacheControl"]
    assert head["ContentType"] == "image/jpeg"


def _swap_after_read(monkeypatch, aws, key, replacement):
    """A client POSTs again with the same presigned form once finalize has read (and will validate) the object."""
    from imageshare.images import direct

    real_read = direct._read

    def read_then_swap(*args):
        answer = real_read(*args)
        put(aws, key, replacement, "image/jpeg")
        return answer

    monkeypatch.setattr(direct, "_read", read_then_swap)


def test_an_object_replaced_after_validation_is_not_stored(owner_client, queue, monkeypatch):
    body = presign(owner_client)
    put(queue, body["key"], make_image())
    html = b"<html>" + b"x" * 1024 * 1024 + b"</html>"
    _swap_after_read(monkeypatch, queue, body["key"], html)
    error(finalize(owner_client, body), 409, "upload_changed")
    assert not exists(queue, f"originals/{body['upload_id']}") and not exists(queue, body["key"])
    assert not Image.objects.exists()


def test_a_copy_refused_by_s3s_if_match_condition_is_upload_changed(owner_client, queue, monkeypatch):
    """Real S3 enforces CopySourceIfMatch (moto does not): its PreconditionFailed is the same answer."""
    from botocore.exceptions import ClientError

    from imageshare.images.storage import s3_client

    body = presign(owner_client)
    put(queue, body["key"], make_image())
    client = s3_client()
    asked = {}

    def copy_object(**kwargs):
        asked.update(kwargs)
        raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one..."}}, "CopyObject")

    monkeypatch.setattr(client, "copy_object", copy_object)
    etag = queue["s3"].head_object(Bucket=queue["bucket"], Key=body["key"])["ETag"]
    error(finalize(owner_client, body), 409, "upload_changed")
    assert asked["CopySourceIfMatch"] == etag
    assert not exists(queue, body["key"]) and not Image.objects.exists()


def test_the_scrub_stores_the_bytes_it_validated_not_the_object_there_later(owner_client, queue, settings, monkeypatch):
    settings.STRIP_ORIGINAL_METADATA = True
    body = presign(owner_client)
    photo = make_image(320, 240)  # nothing to scrub: the bytes are stored as they are
    put(queue, body["key"], photo)
    _swap_after_read(monkeypatch, queue, body["key"], b"<html>" + b"x" * 100_000)
    resp = finalize(owner_client, body)
    assert resp.status_code == 202, resp.content
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{body['upload_id']}")["Body"].read()
    assert stored == photo and resp.json()["bytes"] == len(photo)


def test_a_finalize_whose_object_goes_before_its_copy_answers_the_image_the_other_made(
    owner_client, owner, queue, monkeypatch
):
    """The other finalize makes the image and removes the object between this one's read and its copy: 200, not 503."""
    import uuid

    from imageshare.images import direct

    body = presign(owner_client)
    put(queue, body["key"], make_image())
    real_read = direct._read

    def read_then_the_other_finalizes(*args):
        answer = real_read(*args)
        monkeypatch.setattr(direct, "_read", real_read)
        direct.finalize(owner, uuid.UUID(body["upload_id"]))  # the other request, to the end
        return answer

    monkeypatch.setattr(direct, "_read", read_then_the_other_finalizes)
    resp = finalize(owner_client, body)
    assert resp.status_code == 200, resp.content
    assert resp.json()["id"] == body["upload_id"]
    assert exists(queue, f"originals/{body['upload_id']}") and Image.objects.filter(pk=body["upload_id"]).count() == 1


def test_a_second_finalize_failing_in_the_database_leaves_the_first_ones_image(owner_client, owner, queue, monkeypatch):
    """The second finalize's insert fails (not an IntegrityError: the database busy, say) while the first's row is
    committed: its undo must not remove the first one's image or original; it answers that image."""
    import uuid

    from django.db import OperationalError

    from imageshare.images import direct

    body = presign(owner_client)
    data = make_image()
    put(queue, body["key"], data)
    real_read = direct._read

    def read_then_the_other_finalizes(*args):
        answer = real_read(*args)
        monkeypatch.setattr(direct, "_read", real_read)
        direct.finalize(owner, uuid.UUID(body["upload_id"]))  # the first, to the end: its image, the object gone
        put(queue, body["key"], data)  # the client POSTs the same file again with the same form

        def busy(*args, **kwargs):
            raise OperationalError("database is locked")

        monkeypatch.setattr(Image, "save", busy)
        return answer

    monkeypatch.setattr(direct, "_read", read_then_the_other_finalizes)
    resp = finalize(owner_client, body)
    assert resp.status_code == 200, resp.content
    assert Image.objects.filter(pk=body["upload_id"]).count() == 1
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{body['upload_id']}")["Body"].read()
    assert stored == data


@pytest.mark.django_db(transaction=True)
def test_an_upload_whose_account_goes_meanwhile_is_a_clean_error_without_an_original(client, owner, queue, monkeypatch):
    """The owner is deleted between the put and the commit: the row's foreign key refuses it at commit."""
    from imageshare.images import uploads

    client.force_login(owner)
    real_put_bytes = uploads._put_bytes
    written = []

    def put_then_the_account_goes(prepared):
        real = real_put_bytes(prepared)

        def put(key):
            real(key)
            written.append(key)
            type(owner).objects.filter(pk=owner.pk).delete()

        return put

    monkeypatch.setattr(uploads, "_put_bytes", put_then_the_account_goes)
    from tests.conftest import upload_file

    resp = client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    error(resp, 409, "account_gone")
    assert written and not exists(queue, written[0]) and not Image.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_finalize_whose_account_goes_meanwhile_is_a_clean_error_without_an_original(
    client, owner, queue, monkeypatch
):
    from imageshare.images import direct

    client.force_login(owner)
    body = presign(client)
    put(queue, body["key"], make_image())
    real_read = direct._read

    def read_then_the_account_goes(*args):
        answer = real_read(*args)
        type(owner).objects.filter(pk=owner.pk).delete()
        return answer

    monkeypatch.setattr(direct, "_read", read_then_the_account_goes)
    error(finalize(client, body), 409, "account_gone")
    assert not exists(queue, f"originals/{body['upload_id']}") and not exists(queue, body["key"])
    assert not Image.objects.exists()


def _jpeg_with_a_large_icc_profile() -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", (300, 200), (10, 200, 30)).save(buf, "JPEG", icc_profile=b"\0" * 300_000)
    return buf.getvalue()


def _lzw_tiff() -> bytes:
    import random

    noise = random.Random(1).randbytes(400 * 400 * 3)  # incompressible: the pixels take more than the probe reads
    buf = io.BytesIO()
    PILImage.frombytes("RGB", (400, 400), noise).save(buf, "TIFF", compression="tiff_lzw")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "mime", "size"),
    [
        pytest.param(_jpeg_with_a_large_icc_profile(), "image/jpeg", (300, 200), id="jpeg-300k-icc"),
        pytest.param(_lzw_tiff(), "image/tiff", (400, 400), id="lzw-tiff"),
    ],
)
def test_a_file_whose_header_lies_past_the_probed_start_is_accepted(owner_client, queue, data, mime, size):
    """Without the scrub the probe reads the first PROBE_BYTES: a header past them makes finalize read the rest."""
    from imageshare.images.direct import PROBE_BYTES

    assert len(data) > PROBE_BYTES
    body = presign(owner_client)
    put(queue, body["key"], data, mime)
    resp = finalize(owner_client, body)
    assert resp.status_code == 202, resp.content
    image = resp.json()
    assert (image["width"], image["height"], image["bytes"]) == (*size, len(data))
    stored = queue["s3"].get_object(Bucket=queue["bucket"], Key=f"originals/{body['upload_id']}")
    assert stored["Body"].read() == data and stored["ContentType"] == mime
    assert not exists(queue, body["key"])


def test_a_large_file_that_is_not_an_image_is_still_refused_and_removed(owner_client, queue):
    body = presign(owner_client)
    put(queue, body["key"], b"<html>" + b"x" * 400_000, "image/png")
    error(finalize(owner_client, body), 415, "unsupported_format")
    assert not exists(queue, body["key"]) and not Image.objects.exists()


def test_the_schema_gives_the_presign_size_the_current_limit(owner_client, settings):
    settings.MAX_UPLOAD_BYTES = 12345
    schema = owner_client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    size = schema["components"]["schemas"]["PresignRequestRequest"]["properties"]["size"]
    assert (size["minimum"], size["maximum"]) == (1, 12345)
