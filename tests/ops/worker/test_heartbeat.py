"""The visibility heartbeat: which messages are extended, which are dropped, what shutdown gives back.

Bookkeeping with a fake SQS client and a fake clock (no broker, no waiting);
then, against moto's in-process SQS and a real kombu message, that a held
message really stays hidden past the queue's visibility timeout, and shows
again at once when released.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from botocore.exceptions import EndpointConnectionError

from ops.worker.consumer import WorkerConsumer
from ops.worker.events import EventsConsumer
from ops.worker.heartbeat import VisibilityHeartbeat

QUEUE = "https://sqs.example/123/work"


class FakeSQS:
    """Records ChangeMessageVisibilityBatch calls; answers with what it is told."""

    def __init__(self):
        self.calls: list[dict] = []
        self.gone: set[str] = set()  # receipt handles SQS no longer knows
        self.throttled: set[str] = set()
        self.down = False

    def change_message_visibility_batch(self, QueueUrl, Entries):
        if self.down:
            raise EndpointConnectionError(endpoint_url=QueueUrl)
        self.calls.append({"queue": QueueUrl, "entries": Entries})
        ok, failed = [], []
        for e in Entries:
            if e["ReceiptHandle"] in self.gone:
                failed.append({"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True})
            elif e["ReceiptHandle"] in self.throttled:
                failed.append({"Id": e["Id"], "Code": "InternalError", "SenderFault": False})
            else:
                ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}

    def extended(self, call: int = -1) -> dict[str, int]:
        return {e["ReceiptHandle"]: e["VisibilityTimeout"] for e in self.calls[call]["entries"]}


class FakeMessage:
    """What the heartbeat reads of a kombu Message from the SQS transport."""

    def __init__(self, receipt: str, queue: str = QUEUE):
        self.delivery_tag = receipt  # kombu's SQS transport: the ReceiptHandle
        self.delivery_info = {"sqs_queue": queue, "sqs_message": {"ReceiptHandle": receipt}}
        self.acknowledged = False


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sqs():
    return FakeSQS()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def heartbeat(sqs, clock):
    return VisibilityHeartbeat(sqs, visibility_timeout=45, interval=15, max_hold=360, clock=clock)


def test_nothing_is_extended_before_an_interval_has_passed(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("r1"))
    clock.now += 14
    assert heartbeat.beat() == 0
    assert sqs.calls == []  # a task shorter than the interval costs no SQS call


def test_held_messages_are_extended_to_the_full_timeout_in_one_batch(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("r1"))  # running
    heartbeat.track(FakeMessage("r2"))  # prefetched, not started: held all the same
    clock.now += 15
    assert heartbeat.beat() == 2
    assert len(sqs.calls) == 1
    assert sqs.calls[0]["queue"] == QUEUE
    assert sqs.extended() == {"r1": 45, "r2": 45}


def test_each_message_is_extended_once_per_interval_from_its_own_receipt(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("early"))
    clock.now += 10
    heartbeat.track(FakeMessage("late"))
    clock.now += 5
    heartbeat.beat()
    assert sqs.extended() == {"early": 45}
    clock.now += 10
    heartbeat.beat()
    assert sqs.extended() == {"late": 45}
    clock.now += 1  # "early" was extended 11 s ago: not yet
    heartbeat.beat()
    assert len(sqs.calls) == 2
    clock.now += 4
    heartbeat.beat()
    assert sqs.extended() == {"early": 45}


def test_acknowledged_messages_are_dropped_and_never_extended(heartbeat, sqs, clock):
    done, running = FakeMessage("done"), FakeMessage("running")
    heartbeat.track(done)
    heartbeat.track(running)
    done.acknowledged = True  # acked, rejected or requeued by Celery / kombu
    clock.now += 15
    heartbeat.beat()
    assert sqs.extended() == {"running": 45}
    assert [h.receipt for h in heartbeat.held()] == ["running"]


def test_a_message_sqs_no_longer_knows_is_forgotten(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("deleted-meanwhile"))
    heartbeat.track(FakeMessage("r2"))
    sqs.gone.add("deleted-meanwhile")
    clock.now += 15
    assert heartbeat.beat() == 1
    assert [h.receipt for h in heartbeat.held()] == ["r2"]


def test_a_failed_extension_is_tried_again_on_the_next_tick_not_an_interval_later(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("r1"))
    heartbeat.track(FakeMessage("r2"))
    sqs.throttled.add("r2")
    clock.now += 15
    assert heartbeat.beat() == 1
    sqs.throttled.clear()
    clock.now += 1
    assert heartbeat.beat() == 1
    assert sqs.extended() == {"r2": 45}


def test_sqs_unreachable_keeps_the_messages_and_the_next_tick_retries(heartbeat, sqs, clock):
    heartbeat.track(FakeMessage("r1"))
    clock.now += 15
    sqs.down = True
    assert heartbeat.beat() == 0
    sqs.down = False
    clock.now += 1
    assert heartbeat.beat() == 1


def test_messages_of_several_queues_and_more_than_ten_go_in_batches_of_ten(heartbeat, sqs, clock):
    for i in range(23):
        heartbeat.track(FakeMessage(f"a{i}"))
    heartbeat.track(FakeMessage("b0", queue="https://sqs.example/123/other"))
    clock.now += 15
    assert heartbeat.beat() == 24
    assert sorted((c["queue"].rsplit("/", 1)[-1], len(c["entries"])) for c in sqs.calls) == [
        ("other", 1),
        ("work", 3),
        ("work", 10),
        ("work", 10),
    ]


def test_a_message_held_past_max_hold_is_no_longer_extended(heartbeat, sqs, clock):
    stuck = FakeMessage("never-acked")  # e.g. a wedged main process
    heartbeat.track(stuck)
    for _ in range(23):  # 23 x 15 s = 345 s < max_hold
        clock.now += 15
        heartbeat.beat()
    assert len(sqs.calls) == 23
    clock.now += 15  # 360 s
    assert heartbeat.beat() == 0
    assert heartbeat.held() == []
    assert heartbeat.stats["given_up"] == 1


def test_a_message_that_is_not_from_sqs_is_not_tracked(heartbeat):
    heartbeat.track(SimpleNamespace(delivery_tag=1, delivery_info={"routing_key": "x"}))
    assert heartbeat.held() == []


def test_shutdown_releases_at_once_every_message_still_held_and_only_those(heartbeat, sqs, clock):
    finished, prefetched = FakeMessage("finished"), FakeMessage("prefetched")
    heartbeat.track(finished)
    heartbeat.track(prefetched)
    finished.acknowledged = True
    assert heartbeat.release() == 1
    assert sqs.extended() == {"prefetched": 0}
    assert heartbeat.held() == []
    clock.now += 15
    assert heartbeat.beat() == 0  # nothing left to extend after a release


def test_the_timeout_must_leave_room_for_three_beats(sqs):
    with pytest.raises(ValueError):
        VisibilityHeartbeat(sqs, visibility_timeout=40, interval=15, max_hold=360)


# --- the Consumer ---------------------------------------------------------------------


def test_the_consumer_tracks_every_message_before_celery_handles_it(monkeypatch, heartbeat):
    handled = []
    monkeypatch.setattr(EventsConsumer, "create_task_handler", lambda self, promise=None: handled.append)
    consumer = WorkerConsumer.__new__(WorkerConsumer)  # no broker: only the wrapping is under test
    consumer.app = SimpleNamespace(conf={"imageshare_visibility_heartbeat": {"visibility_timeout": 45}})
    consumer.heartbeat = heartbeat
    on_message = consumer.create_task_handler()
    message = FakeMessage("r1")
    on_message(message)
    assert handled == [message]
    assert [h.receipt for h in heartbeat.held()] == ["r1"]


def test_without_the_setting_the_consumer_handles_messages_as_celery_does(monkeypatch):
    celery_handler = object()
    monkeypatch.setattr(EventsConsumer, "create_task_handler", lambda self, promise=None: celery_handler)
    consumer = WorkerConsumer.__new__(WorkerConsumer)
    consumer.app = SimpleNamespace(conf={})
    assert consumer.create_task_handler() is celery_handler


def test_consumer_shutdown_stops_the_beats_then_closes_then_releases(monkeypatch, heartbeat, sqs):
    order = []
    monkeypatch.setattr(EventsConsumer, "shutdown", lambda self: order.append("channel closed"))
    monkeypatch.setattr(heartbeat, "stop", lambda: order.append("beats stopped"))
    consumer = WorkerConsumer.__new__(WorkerConsumer)
    consumer.heartbeat = heartbeat
    heartbeat.track(FakeMessage("prefetched"))
    consumer.shutdown()
    # kombu's close makes unacked messages visible after wait_time_seconds;
    # the release after it makes them visible at once, and no beat follows.
    assert order == ["beats stopped", "channel closed"]
    assert sqs.extended() == {"prefetched": 0}


# --- real SQS semantics (moto, in process) and a real kombu message ---------------------


@pytest.fixture
def short_queue(aws):
    """A queue that hides a received message for 2 s only (the work queue's is 45 s)."""
    sqs = aws["sqs"]
    name = f"heartbeat-{time.monotonic_ns()}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    yield sqs, name, url
    sqs.delete_queue(QueueUrl=url)


def _visible(sqs, url) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])


def test_a_held_message_stays_hidden_past_the_timeout_and_shows_at_once_when_released(short_queue):
    from kombu import Connection

    sqs, name, url = short_queue
    options = {"region": "us-east-1", "predefined_queues": {name: {"url": url}}}
    with Connection("sqs://testing:testing@", transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        queue.put({"image": "held"})
        queue.put({"image": "acked"})
        held, acked = queue.get(timeout=2), queue.get(timeout=2)
        # What the heartbeat relies on, as kombu's SQS transport delivers it:
        assert held.delivery_info["sqs_queue"] == url
        assert held.delivery_tag == held.delivery_info["sqs_message"]["ReceiptHandle"]

        heartbeat = VisibilityHeartbeat(sqs, visibility_timeout=2, interval=0.5, max_hold=60, tick=0.1)
        heartbeat.track(held)
        heartbeat.track(acked)
        heartbeat.start()
        try:
            acked.ack()  # done: deleted, and dropped by the next beat
            time.sleep(3.5)  # well past the queue's 2 s
            assert _visible(sqs, url) == []  # not handed to a second worker
            assert [h.receipt for h in heartbeat.held()] == [held.delivery_tag]
        finally:
            heartbeat.stop()
        assert heartbeat.release() == 1
        shown = _visible(sqs, url)
        assert len(shown) == 1  # at once, not after the timeout
        sqs.delete_message(QueueUrl=url, ReceiptHandle=shown[0]["ReceiptHandle"])
        queue.close()


def test_without_a_heartbeat_a_dead_workers_message_shows_after_the_timeout(short_queue):
    sqs, _, url = short_queue
    sqs.send_message(QueueUrl=url, MessageBody="x")
    assert len(_visible(sqs, url)) == 1  # received by a worker that then dies
    assert _visible(sqs, url) == []
    time.sleep(2.5)
    assert len(_visible(sqs, url)) == 1
