"""What the local stack's terminal shows, and how it copes with losing its reader (no stack started here)."""

from __future__ import annotations

import os

from ops.devstack.follow import LogFollower, notable
from ops.devstack.terminal import Terminal

HOOK = "2026-12-02 06:03:03,175 INFO imageshare.console.autoscaler: "


def test_only_pool_changes_failed_images_and_errors_reach_the_terminal():
    assert notable("autoscale", HOOK + "scaling hold: 1 -> 1 | hold: 0 visible") is None
    assert notable("autoscale", HOOK + "scaling out: 1 -> 3 | out: 40 visible") == (
        "scaling out: 1 -> 3 | out: 40 visible",
        True,
    )
    assert notable("autoscale", HOOK + "scaling in: 3 -> 1 | in: idle")[1] is True
    sweep = "2026-12-02 06:03:03,175 WARNING imageshare.images.deadletters: marked 2 dead-lettered images failed"
    assert notable("autoscale", sweep) == ("marked 2 dead-lettered images failed", True)
    skipped = "2026-12-02 06:03:03,175 WARNING imageshare.console.autoscaler: scaling tick skipped: no queue"
    assert notable("autoscale", skipped) == ("scaling tick skipped: no queue", False)

    done = (
        "[2026-12-02 06:02:56,228: INFO/ForkPoolWorker-1] Task thumbnails.tasks.make_renditions[ab-1] "
        "succeeded in 0.05s: {'image': 'f00d', 'failed': 'unsupported_format'}"
    )
    assert notable("worker1", done) == ("image f00d failed: unsupported_format", True)
    ok = "[2026-12-02 06:02:56,228: INFO/ForkPoolWorker-1] Task x[1] succeeded in 0.3s: {'image': 'f00d', 'ms': 80}"
    assert notable("worker1", ok) is None
    assert notable("worker1", "[2026-12-02 06:02:56,228: WARNING/MainProcess] events channel unavailable") is None
    error = "[2026-12-02 06:02:56,228: ERROR/MainProcess] consumer: Cannot connect to sqs://"
    assert notable("worker1", error) == ("consumer: Cannot connect to sqs://", False)

    assert notable("web", "[2026-12-02 06:02:53 +0000] [31740] [INFO] Booting worker with pid: 31744") is None
    assert notable("web", "[2026-12-02 06:02:53 +0000] [31740] [CRITICAL] WORKER TIMEOUT (pid:1)")[0] == (
        "WORKER TIMEOUT (pid:1)"
    )
    assert notable("web", "Traceback (most recent call last):") is None  # the file keeps it


def test_the_follower_starts_at_the_end_and_does_not_repeat_an_error(tmp_path):
    log = tmp_path / "web.log"
    log.write_text("2026-12-02 06:03:03,175 ERROR django.request: from an earlier run\n")
    (tmp_path / "workers").mkdir()
    follower = LogFollower({"web": log}, [(tmp_path / "workers", "*.log")])
    assert follower.poll() == []
    error = "2026-12-02 06:03:04,175 ERROR django.request: Internal Server Error: /api/v1/images\n"
    with open(log, "a") as f:
        f.write(error + error + "2026-12-02 06:03:05,175 ERROR django.request: half a li")
    (tmp_path / "workers" / "worker2.log").write_text(
        "[2026-12-02 06:02:56,228: INFO/ForkPoolWorker-1] Task t[1] succeeded in 0.1s: {'image': 'a1', 'failed': 'x'}\n"
    )
    lines = follower.poll()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "web: Internal Server Error: /api/v1/images",
        "worker2: image a1 failed: x",
    ]
    with open(log, "a") as f:
        f.write("ne\n")
    assert [line.split(" ", 1)[1] for line in follower.poll()] == ["web: half a line"]


def test_a_pipe_whose_reader_exited_is_noticed_without_writing_and_never_raises(tmp_path):
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    term = Terminal(tmp_path / "stack.log", stream)
    term.say("hello")
    assert os.read(read_end, 100) == b"hello\n"
    assert not term.gone()

    os.close(read_end)  # the reader is gone (`cat` killed with the rest of the pipeline)
    assert term.gone()
    term.say("still logged")  # no BrokenPipeError, no traceback
    stream.close()
    assert "still logged" in (tmp_path / "stack.log").read_text()


def test_a_write_into_a_dead_pipe_is_swallowed(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)
    term = Terminal(tmp_path / "stack.log", os.fdopen(write_end, "w"))
    term.say("Stopping the local stack: SIGINT")  # EPIPE
    assert term.closed
    assert "Stopping the local stack: SIGINT" in (tmp_path / "stack.log").read_text()
