"""A worker killed outright (kill -9 of its whole process group) gives its jobs back within a minute.

The issue: during a burst, a worker was killed with SIGKILL (parent and pool
children); its replacement was up within 7 s, but the messages the dead
worker held stayed invisible for the queue's whole visibility timeout (300 s).
Now the queue hides a received message for SQS_VISIBILITY_TIMEOUT (45 s) only,
and a live worker's heartbeat (ops/worker/heartbeat.py) keeps extending the
messages it holds; a dead worker extends nothing, so SQS hands its messages
to the replacement within that timeout.

This test starts its own stack (no scaling hook, no monitoring) and runs three
rounds: upload a burst of noisy 2000x1500 photos, kill -9 the running worker
while it holds tasks, start a replacement (as the scaling hook would), and
check every image of the round is ready, with all its renditions, within 60 s
of the kill; and that no image other than the ones the dead worker held was
processed twice.
"""

from __future__ import annotations

import io
import os
import random
import re
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests
from PIL import Image

from ops.devstack.stack import Stack
from tests.integration.conftest import own_stack

# Its own stack, on SQLite whatever DATABASE_URL says: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.ownstack]

ADMIN_PASSWORD = "crash-admin-pass"
ROUNDS = 3
PHOTOS_PER_ROUND = 12
RECOVERY_BOUND = 60.0  # seconds from the kill to the last image of the round ready
RECEIVED = re.compile(r"Task thumbnails\.tasks\.make_renditions\[([0-9a-f-]+)\] received")
FINISHED = re.compile(r"Task thumbnails\.tasks\.make_renditions\[([0-9a-f-]+)\] (?:succeeded|failed|raised|retry)")
SUCCEEDED = re.compile(
    r"Task thumbnails\.tasks\.make_renditions\[([0-9a-f-]+)\] succeeded in [0-9.]+s: .*'image': '([0-9a-f-]+)'"
)


def noisy_photo(seed: int, width: int = 2000, height: int = 1500) -> bytes:
    """Random pixels: large to store and slow to encode, like a real photo (about 2.7 MB)."""
    rng = random.Random(seed)
    im = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    # workers=0: the test starts (and kills) its workers itself.
    with own_stack(
        tmp_path_factory, "crash-stack", ADMIN_PASSWORD, workers=0, concurrency=2, autoscale=False, events=False
    ) as s:
        yield s


def _in_hand(log: Path) -> set[str]:
    """Task ids the worker received and has not finished, from its log."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return set(RECEIVED.findall(text)) - set(FINISHED.findall(text))


def _kill_whole_worker(stack: Stack, name: str) -> float:
    proc = stack.procs[name]
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its pool children: no shutdown code runs
    killed_at = time.time()
    proc.wait(10)
    return killed_at


def _ready_at(body: dict) -> float:
    return datetime.fromisoformat(body["ready_at"]).timestamp()


def test_a_killed_worker_gives_its_jobs_back_within_a_minute(crash_stack):
    stack = crash_stack
    api = requests.Session()
    api.auth = ("admin", ADMIN_PASSWORD)
    api.headers["Accept"] = "application/json"
    victim = stack.add_worker(1)
    report = []
    for round_no in range(1, ROUNDS + 1):
        log = stack.var_dir / f"{victim}.log"
        ids: list[str] = []
        held: set[str] = set()
        killed_at = None
        for i in range(PHOTOS_PER_ROUND):
            photo = (f"r{round_no}-{i}.jpg", noisy_photo(round_no * 100 + i), "image/jpeg")
            resp = api.post(f"{stack.web_url}/api/v1/images", files={"image": photo}, timeout=60)
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
            if killed_at is None and i >= 3:
                # Mid-burst, at a moment the worker holds a task (bounded wait).
                deadline = time.monotonic() + 10
                while not _in_hand(log) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if _in_hand(log):
                    killed_at = _kill_whole_worker(stack, victim)
                    held = _in_hand(log)  # read again: everything the dead worker wrote
        assert killed_at is not None and held, f"round {round_no}: the worker never held a task to kill it with"

        # The scaling hook's restart: a new worker, up in a few seconds.
        victim = stack.add_worker(round_no + 1)

        bodies = {}
        deadline = killed_at + RECOVERY_BOUND
        pending = set(ids)
        while pending and time.time() < deadline:
            for image_id in sorted(pending):
                body = api.get(f"{stack.web_url}/api/v1/images/{image_id}", timeout=10).json()
                if body["status"] != "pending":
                    bodies[image_id] = body
                    pending.discard(image_id)
            time.sleep(0.5)
        assert not pending, f"round {round_no}: still pending {time.time() - killed_at:.0f}s after the kill: {pending}"
        for body in bodies.values():
            assert body["status"] == "ready", body
            assert {"small", "medium", "large"} <= set(body["renditions"]), body
        last = max(_ready_at(b) for b in bodies.values()) - killed_at
        assert last <= RECOVERY_BOUND

        # The held tasks were finished by another worker; when, from their images.
        logs = "".join(p.read_text(errors="replace") for p in stack.var_dir.glob("worker*.log"))
        image_of = dict(SUCCEEDED.findall(logs))
        held_images = {image_of[t] for t in held if t in image_of}
        assert len(held_images) == len(held), "a held task was never finished"
        held_last = max(_ready_at(bodies[i]) for i in held_images) - killed_at

        # Only what the dead worker held ran twice: the heartbeat kept every
        # other message hidden while it was worked on.
        with sqlite3.connect(stack.var_dir / "stack.sqlite3") as db:
            hexes = [i.replace("-", "") for i in ids]  # how Django stores a UUID in SQLite
            query = f"SELECT id, attempts FROM images_image WHERE id IN ({','.join('?' * len(ids))})"
            attempts = dict(db.execute(query, hexes).fetchall())
        twice = {i for i, n in attempts.items() if n > 1}
        assert all(n <= 2 for n in attempts.values()), attempts
        assert twice <= {i.replace("-", "") for i in held_images}, (twice, held_images)
        report.append(f"round {round_no}: held {len(held)}; ready after kill: held {held_last:.1f}s, all {last:.1f}s")
    print("\n".join(report))
