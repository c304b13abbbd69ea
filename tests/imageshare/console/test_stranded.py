"""Stranded uploads: a pending image whose message was lost is queued again by the periodic duties."""

from datetime import timedelta

import pytest
from django.utils import timezone

from imageshare.console.duties import Duty, run_duties, stranded_sweep
from imageshare.console.stranded import redispatch_stranded, redispatched_total, stranded_images
from imageshare.images.deadletters import image_id_of
from imageshare.images.models import Image
from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def queued_ids(aws) -> list[str]:
    """Every image id with a message in the work queue (the messages are consumed)."""
    ids = []
    for _ in range(20):
        batch = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not batch.get("Messages"):
            break
        for m in batch["Messages"]:
            ids.append(image_id_of(m["Body"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=m["ReceiptHandle"])
    return sorted(ids)


def image(owner, status=Image.Status.PENDING, queued_ago=None, created_ago=None, attempts=0) -> Image:
    now = timezone.now()
    img = Image.objects.create(
        owner=owner, original_key="originals/x", status=status, width=1, height=1, byte_size=1, attempts=attempts
    )
    Image.objects.filter(pk=img.pk).update(
        enqueued_at=None if queued_ago is None else now - timedelta(seconds=queued_ago),
        created_at=now - timedelta(seconds=created_ago if created_ago is not None else (queued_ago or 0)),
    )
    img.refresh_from_db()
    return img


def test_only_pending_images_queued_longer_ago_than_the_delay_are_queued_again(owner, queue, settings):
    settings.STRANDED_AFTER_SECONDS = 900
    lost = image(owner, queued_ago=901)
    never_queued = image(owner, queued_ago=None, created_ago=1000)  # a row from before enqueued_at
    waiting = image(owner, queued_ago=600)  # in a backlog: its message is still coming
    image(owner, status=Image.Status.READY, queued_ago=5000)
    image(owner, status=Image.Status.FAILED, queued_ago=5000)

    assert sorted(str(i.pk) for i in stranded_images()) == sorted([str(lost.pk), str(never_queued.pk)])
    result = redispatch_stranded()

    assert (result.redispatched, result.failed, result.left) == (2, 0, 0)
    assert queued_ids(queue) == sorted([str(lost.pk), str(never_queued.pk)])
    lost.refresh_from_db()
    assert lost.status == Image.Status.PENDING
    assert timezone.now() - lost.enqueued_at < timedelta(seconds=5)  # the next one waits a full delay
    waiting.refresh_from_db()
    assert waiting.enqueued_at < timezone.now() - timedelta(seconds=599)
    assert redispatched_total() == 2


def test_a_second_pass_does_not_queue_it_again_before_another_delay(owner, queue):
    image(owner, queued_ago=2000)
    assert redispatch_stranded().redispatched == 1
    assert redispatch_stranded().redispatched == 0
    assert len(queued_ids(queue)) == 1
    assert redispatched_total() == 1


@pytest.mark.django_db(transaction=True)  # the upload's enqueue runs on a real commit
def test_a_lost_message_is_replaced_and_the_image_becomes_ready_and_a_duplicate_is_harmless(owner_client, queue):
    from thumbnails.tasks import make_renditions

    resp = owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    image_id = resp.json()["id"]
    assert queued_ids(queue) == [image_id]  # ... and then that message is lost
    Image.objects.filter(pk=image_id).update(enqueued_at=timezone.now() - timedelta(hours=1))

    redispatch_stranded()
    assert queued_ids(queue) == [image_id]
    make_renditions.run(image_id)  # what a worker does with it
    body = owner_client.get(f"/api/v1/images/{image_id}").json()
    assert body["status"] == "ready" and {"small", "medium", "large"} <= set(body["renditions"])
    # The original message was not lost after all: its late run changes nothing.
    assert make_renditions.run(image_id) == {"image": image_id, "skipped": "ready"}


def test_an_image_tried_as_often_as_sqs_would_deliver_it_is_failed_not_queued_again(owner, queue, settings):
    settings.SQS_MAX_RECEIVE_COUNT = 5
    crasher = image(owner, queued_ago=2000, attempts=5)  # its message kills every worker that runs it
    result = redispatch_stranded()
    assert (result.redispatched, result.failed) == (0, 1)
    assert queued_ids(queue) == []
    crasher.refresh_from_db()
    assert crasher.status == Image.Status.FAILED and crasher.failure_code == "processing_crashed"
    # ... retryable by an operator, like a dead-lettered image
    from imageshare.images.commands import can_retry

    assert can_retry(crasher)


def test_with_the_queue_unreachable_the_image_waits_for_the_next_pass(owner, queue, monkeypatch):
    from thumbnails.tasks import make_renditions

    img = image(owner, queued_ago=2000)
    before = img.enqueued_at

    def unreachable(*args, **kwargs):
        raise ConnectionError("SQS is down")

    monkeypatch.setattr(make_renditions, "delay", unreachable)
    result = redispatch_stranded()
    assert (result.redispatched, result.left) == (0, 1)
    img.refresh_from_db()
    assert img.enqueued_at == before  # still stranded: found again on the next pass
    monkeypatch.undo()
    assert redispatch_stranded().redispatched == 1


def test_a_pass_is_bounded(owner, queue):
    for _ in range(3):
        image(owner, queued_ago=2000)
    result = redispatch_stranded(batch=2)
    assert (result.redispatched, result.left) == (2, 1)
    assert redispatch_stranded(batch=2).redispatched == 1
    assert len(queued_ids(queue)) == 3


def test_the_duty_runs_it_and_the_counts_show_on_the_ops_page_and_in_the_metrics(client, staff, owner, queue):
    image(owner, queued_ago=2000)
    waiting = image(owner, queued_ago=5000, status=Image.Status.PENDING)
    client.force_login(staff)
    assert "Stranded uploads" in client.get("/ops/").content.decode()
    metrics = client.get("/metrics").content.decode()
    assert "imageshare_images_stranded 2.0" in metrics
    assert "imageshare_stranded_redispatched_total 0.0" in metrics

    run_duties([Duty("stranded uploads", lambda: 60, stranded_sweep)], stopping=False, once=True)

    assert len(queued_ids(queue)) == 2
    page = client.get("/ops/").content.decode()
    assert "queued again so far: <strong>2</strong>" in page
    metrics = client.get("/metrics").content.decode()
    assert "imageshare_images_stranded 0.0" in metrics
    assert "imageshare_stranded_redispatched_total 2.0" in metrics
    waiting.refresh_from_db()
    assert waiting.status == Image.Status.PENDING
