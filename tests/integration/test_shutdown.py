"""A worker that stops (scale-in, deploy) strands no upload in its open SQS long poll."""

import threading
import time

import pytest

from tests.integration.conftest import wait_for_status
from tests.support.images import make_image

pytestmark = pytest.mark.integration


def test_uploads_sent_while_a_worker_stops_are_all_made_promptly(stack, api):
    # Without the release in ops/worker/consumer.py, a message that reaches
    # the stopping worker's open poll stays invisible for the queue's
    # visibility timeout, beyond the bound below.
    from imageshare import settings

    bound = 30
    assert int(stack.env.get("SQS_VISIBILITY_TIMEOUT", settings.SQS_VISIBILITY_TIMEOUT)) > bound
    name = stack.add_worker(9)
    photo = make_image(200, 150)
    stopper = threading.Thread(target=stack.stop_process, args=(name,))
    stopper.start()
    ids = []
    while (stopper.is_alive() or len(ids) < 5) and len(ids) < 40:
        resp = api.post(f"{api.base}/api/v1/images", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=30)
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
        time.sleep(0.1)
    stopper.join()
    assert stack.procs[name].returncode == 0  # a warm shutdown, not a kill
    deadline = time.monotonic() + bound
    for image_id in ids:
        body = wait_for_status(api, image_id, timeout=max(1, deadline - time.monotonic()))
        assert body["status"] == "ready", body


def test_a_stopping_worker_finishes_the_task_in_hand(stack, api):
    """SIGTERM goes to the worker's main process only (its warm shutdown), never to its pool
    processes, which would kill the task mid-run (WorkerLostError) and fail the image for a while."""
    stack.stop_process("worker1")  # the added worker is the only one taking tasks
    try:
        name = stack.add_worker(8)
        photo = make_image(4000, 3000, quality=95)  # long enough to be in hand when the stop comes
        ids = []
        for _ in range(3):
            resp = api.post(f"{api.base}/api/v1/images", files={"image": ("p.jpg", photo, "image/jpeg")}, timeout=30)
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
        log = stack.log_path(name)
        deadline = time.monotonic() + 30
        while "make_renditions" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        stack.stop_process(name)
        assert stack.procs[name].returncode == 0  # a warm shutdown, not a kill
        assert "WorkerLostError" not in log.read_text()
    finally:
        stack.restart_process("worker1")
    for image_id in ids:
        assert wait_for_status(api, image_id, timeout=60)["status"] == "ready"
