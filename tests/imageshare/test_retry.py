"""A failed image can be tried again when a retry can cure the failure (its original is kept)."""

import pytest
from django.test import Client

from imageshare.images.deadletters import image_id_of
from imageshare.images.models import Image
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def upload(client):
    resp = client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    assert resp.status_code == 202, resp.content
    return resp.json()["id"]


def fail(image_id, code, reason="Processing stopped 5 times without finishing."):
    Image.objects.filter(pk=image_id).update(status=Image.Status.FAILED, failure_code=code, failure_reason=reason)


def queued_ids(aws):
    batch = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
    return [image_id_of(m["Body"]) for m in batch.get("Messages", [])]


@pytest.mark.django_db(transaction=True)  # the enqueue runs on a real commit
def test_an_owner_retries_a_dead_lettered_image_and_it_becomes_ready(owner_client, queue):
    from thumbnails.tasks import make_renditions

    image_id = upload(owner_client)
    queued_ids(queue)  # the upload's own message: out of the way
    fail(image_id, "processing_crashed")
    assert owner_client.get(f"/api/v1/images/{image_id}").json()["retryable"] is True

    resp = owner_client.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json")
    assert resp.status_code == 202, resp.content
    assert resp.json()["status"] == "pending" and "error" not in resp.json()
    assert queued_ids(queue) == [image_id]

    make_renditions.run(image_id)  # what the worker does with that message
    body = owner_client.get(f"/api/v1/images/{image_id}").json()
    assert body["status"] == "ready" and set(body["renditions"]) >= {"small", "medium", "large"}


def test_an_image_the_engine_refused_is_not_retried(owner_client, queue):
    image_id = upload(owner_client)
    fail(image_id, "corrupt_image", "The image data is corrupt.")
    assert owner_client.get(f"/api/v1/images/{image_id}").json()["retryable"] is False
    resp = owner_client.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "not_retryable"
    assert "corrupt" in resp.json()["error"]["message"]
    assert Image.objects.get(pk=image_id).status == Image.Status.FAILED


def test_an_image_that_has_not_failed_is_not_retried(owner_client, queue):
    image_id = upload(owner_client)  # pending
    resp = owner_client.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "not_failed"


def test_only_the_owner_can_retry(owner_client, other_user, anon, queue):
    image_id = upload(owner_client)
    fail(image_id, "processing_crashed")
    other = Client()
    other.force_login(other_user)
    assert other.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json").status_code == 404
    assert anon.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json").status_code in (401, 404)
    assert other.post(f"/images/{image_id}/retry").status_code == 404
    assert Image.objects.get(pk=image_id).status == Image.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_the_queue_being_down_leaves_the_image_failed_with_a_503(owner_client, queue, monkeypatch):
    from thumbnails.tasks import make_renditions

    image_id = upload(owner_client)
    fail(image_id, "processing_crashed")

    def broken(*args, **kwargs):
        raise ConnectionError("SQS unreachable")

    monkeypatch.setattr(make_renditions, "delay", broken)
    resp = owner_client.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json")
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "queue_unavailable"
    image = Image.objects.get(pk=image_id)
    assert (image.status, image.failure_code) == (Image.Status.FAILED, "processing_crashed")


def test_the_image_page_offers_try_again_and_it_queues_the_image(owner_client, queue):
    image_id = upload(owner_client)
    fail(image_id, "processing_crashed")
    page = owner_client.get(f"/images/{image_id}")
    assert b"Try again" in page.content
    resp = owner_client.post(f"/images/{image_id}/retry", follow=True)
    assert resp.status_code == 200
    assert b"Trying again" in resp.content
    assert Image.objects.get(pk=image_id).status == Image.Status.PENDING


def test_the_image_page_does_not_offer_try_again_when_it_cannot_help(owner_client, queue):
    image_id = upload(owner_client)
    fail(image_id, "corrupt_image", "The image data is corrupt.")
    page = owner_client.get(f"/images/{image_id}")
    assert b"The image data is corrupt." in page.content and b"Try again" not in page.content


def analysis_queued_ids(aws):
    """The image ids on the analysis queue (kombu creates it on the first send in unit tests)."""
    from django.conf import settings

    url = aws["sqs"].get_queue_url(QueueName=settings.SQS_ANALYSIS_QUEUE_NAME)["QueueUrl"]
    ids = []
    for _ in range(20):
        batch = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not batch.get("Messages"):
            break
        for m in batch["Messages"]:
            ids.append(image_id_of(m["Body"]))
            aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return ids


@pytest.mark.django_db(transaction=True)  # the enqueue runs on a real commit
def test_a_retry_queues_the_analysis_again_when_it_has_no_result(owner_client, queue):
    from imageshare.images.models import Analysis

    first = upload(owner_client)
    second = upload(owner_client)
    analysis_queued_ids(queue)  # the uploads' own analysis messages: out of the way
    Analysis.objects.create(image_id=second, status=Analysis.Status.DONE, num_faces=0)
    for image_id in (first, second):
        fail(image_id, "processing_crashed")
        resp = owner_client.post(f"/api/v1/images/{image_id}/retry", HTTP_ACCEPT="application/json")
        assert resp.status_code == 202, resp.content

    # The one without a result is analysed again; the one already analysed is not.
    assert analysis_queued_ids(queue) == [first]
