"""Flower sees the work that travels over SQS, and monitoring never stops the work."""

import time

import pytest
import requests

from tests.integration.conftest import wait_for_status
from tests.integration.test_pipeline import upload
from tests.support.images import make_image

pytestmark = pytest.mark.integration


def flower(stack, path):
    user, _, password = stack.env["FLOWER_BASIC_AUTH"].partition(":")
    return requests.get(f"{stack.flower_url}{path}", auth=(user, password), timeout=10)


def succeeded_image_ids(stack) -> set[str]:
    tasks = flower(stack, "/api/tasks?taskname=thumbnails.tasks.make_renditions&state=SUCCESS").json()
    return {t["args"].strip("()',\" ") for t in tasks.values()}


def wait_until_flower_shows(stack, image_ids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(image_ids) <= succeeded_image_ids(stack):
            return
        time.sleep(0.5)
    missing = set(image_ids) - succeeded_image_ids(stack)
    raise AssertionError(f"Flower never reported {len(missing)} of {len(image_ids)} tasks as succeeded")


@pytest.fixture
def events_stack(stack):
    if not stack.events:
        pytest.skip("no redis-server on this machine: the stack runs without the events channel")
    return stack


def test_flower_reports_every_resize_task_and_an_online_worker(api, events_stack):
    ids = [upload(api, make_image(800, 600)).json()["id"] for _ in range(4)]
    for image_id in ids:
        assert wait_for_status(api, image_id)["status"] == "ready"
    wait_until_flower_shows(events_stack, ids)
    metrics = flower(events_stack, "/metrics").text
    online = [
        line for line in metrics.splitlines() if line.startswith("flower_worker_online") and line.endswith(" 1.0")
    ]
    assert online, "no worker reported online"
    assert 'flower_events_total{task="thumbnails.tasks.make_renditions",type="task-succeeded"' in metrics


def test_flower_refuses_requests_without_credentials(events_stack):
    assert requests.get(f"{events_stack.flower_url}/api/tasks", timeout=10).status_code == 401
    assert requests.get(f"{events_stack.flower_url}/", timeout=10).status_code == 401


def test_images_keep_becoming_ready_while_the_events_channel_is_down(api, events_stack):
    events_stack.stop_process("redis")
    try:
        ids = [upload(api, make_image(640, 480)).json()["id"] for _ in range(3)]
        for image_id in ids:
            assert wait_for_status(api, image_id, timeout=60)["status"] == "ready"
    finally:
        events_stack.restart_process("redis")
    # And monitoring comes back by itself: new tasks show up in Flower again.
    # Events are not durable (Redis pub/sub), so a task finished before Flower
    # has re-subscribed is not shown: keep sending until one is (bounded).
    deadline = time.monotonic() + 60
    while True:
        later = upload(api, make_image(640, 480)).json()["id"]
        assert wait_for_status(api, later)["status"] == "ready"
        try:
            wait_until_flower_shows(events_stack, [later], timeout=5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def test_queue_depth_is_served_from_sqs(api, stack):
    body = api.get(f"{api.base}/ops/queue.json", timeout=10).json()
    assert body["work"]["name"] and body["dead_letter"]["name"]
    assert {"visible", "in_flight", "delayed"} <= set(body["work"])
    metrics = api.get(f"{api.base}/metrics", headers={"Accept": "text/plain"}, timeout=10)
    assert metrics.status_code == 200
    assert 'imageshare_sqs_messages{queue="dead_letter",state="visible"}' in metrics.text
