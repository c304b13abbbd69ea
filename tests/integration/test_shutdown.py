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
