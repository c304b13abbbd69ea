"""A live check of the scaling hook on the local stack: a burst grows the pool,
and the pool returns to the minimum once the queue has drained."""

import io
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image as PILImage

from tests.integration.conftest import ADMIN_PASSWORD, own_stack, wait_for_status

# Its own stack, on SQLite whatever DATABASE_URL says: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.ownstack]


@pytest.fixture(scope="module")
def scaling_stack(tmp_path_factory):
    scaling = {
        "SCALING_MIN_WORKERS": "1",
        "SCALING_MAX_WORKERS": "3",
        "SCALING_INTERVAL_SECONDS": "1",
        "SCALING_TARGET_LATENCY_SECONDS": "1",
        "SCALING_SCALE_IN_STABLE_SECONDS": "4",
        "SCALING_SCALE_IN_COOLDOWN_SECONDS": "4",
    }
    with own_stack(
        tmp_path_factory, "scaling", ADMIN_PASSWORD, concurrency=1, events=False, autoscale=True, extra_env=scaling
    ) as s:
        yield s


def pool_size(stack) -> tuple[int, int]:
    state = stack.local_pool().state()
    return state.running, state.starting


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_a_burst_grows_the_pool_and_it_shrinks_back_to_the_minimum(scaling_stack):
    api = requests.Session()
    api.auth = ("admin", ADMIN_PASSWORD)
    api.headers["Accept"] = "application/json"
    wait_for(lambda: pool_size(scaling_stack)[0] == 1, 60, "the hook to start the minimum pool")

    # A flood: 8 clients at once sending noisy progressive JPEGs (costly to
    # decode), faster than one single-slot worker drains them.
    noise = PILImage.effect_noise((2400, 1800), 80).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=92, progressive=True)
    photo = buf.getvalue()

    def send(_):
        r = api.post(f"{scaling_stack.web_url}/api/v1/images", files={"image": ("p.jpg", photo)}, timeout=30)
        assert r.status_code == 202
        return r.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(send, range(80)))

    peak = [0]

    def grew():
        running, starting = pool_size(scaling_stack)
        peak[0] = max(peak[0], running + starting)
        return running + starting > 1

    wait_for(grew, 60, "the pool to grow past one worker")
    api.base = scaling_stack.web_url
    for image_id in ids:
        assert wait_for_status(api, image_id, timeout=180)["status"] == "ready"
    wait_for(lambda: pool_size(scaling_stack) == (1, 0), 90, "the pool to return to the minimum")
    assert peak[0] <= 3  # the bound

    # The hook recorded both directions (the ops page shows these rows).
    db = sqlite3.connect(scaling_stack.var_dir / "stack.sqlite3")
    actions = [a for (a,) in db.execute("select action from ops_scalingdecision where action in ('out', 'in')")]
    assert "out" in actions and "in" in actions
