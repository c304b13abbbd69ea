"""The worker's Consumer: events on their own channel, held messages kept hidden, none stranded at shutdown.

Held messages: every message the Consumer receives is tracked by the
visibility heartbeat (``ops/worker/heartbeat.py``), which keeps it hidden on
SQS while this worker holds it and gives back at shutdown what was never
started. A worker killed outright extends nothing, so its messages return
within the queue's short visibility timeout (45 s).

The stranding (kombu #1819, celery #10172): a worker keeps a long poll
(ReceiveMessage, up to ``wait_time_seconds``) open on SQS at all times. On a
warm shutdown Celery leaves its event loop and the process exits with that
poll still open. SQS still answers it: a message that arrives in that window
is marked received, sent to a socket nobody reads, and stays invisible for
the queue's whole visibility timeout (300 s then, 45 s now). Nothing is
lost, but the upload waits, and the scaling hook stops workers after every
flood, so it happens in normal operation (reproduced on the local stack:
one upload in twelve sent while a worker stopped).

kombu already gives back messages that arrive for a cancelled consumer
(``Channel._on_messages_ready`` makes them visible at once); it only needs
the event loop to run until the open poll returns. Celery stops the
Consumer before it closes the hub, so ``stop`` can do exactly that.
"""

from __future__ import annotations

import logging
import time

from vine import promise

from ops.worker.events import EventsConsumer
from ops.worker.heartbeat import VisibilityHeartbeat

log = logging.getLogger(__name__)


def _tolerate_failed_receives() -> None:
    """A failed long poll must not kill the worker (kombu 5.7).

    kombu's async SQS client turns a receive that timed out or got a 5xx into
    ``[]`` ("interpreted as an empty list. This prevents hanging the Celery
    worker"), but ``Channel._on_messages_ready`` then calls ``.get`` on it:
    AttributeError, "Unrecoverable error", and the worker process exits. Seen
    on one injected SQS 500 and on every moto restart (tests/integration/
    test_faults.py). Treat it as what kombu meant: no messages this time.
    """
    from kombu.transport.SQS import Channel

    original = Channel._on_messages_ready
    if getattr(original, "imageshare_tolerant", False):
        return

    def on_messages_ready(self, queue, qname, messages):
        if not isinstance(messages, dict):
            return 0
        return original(self, queue, qname, messages)

    on_messages_ready.imageshare_tolerant = True
    Channel._on_messages_ready = on_messages_ready


_tolerate_failed_receives()

EXTRA_WAIT_SECONDS = 2.0  # beyond the long poll's own wait: one slow response


def _requests_in_flight(client) -> int:
    """Open and queued requests of kombu's curl client (its only HTTP client)."""
    curls = getattr(client, "_curls", None)
    free = getattr(client, "_free_list", None)
    if curls is None or free is None:
        return 0
    return len(curls) - len(free) + len(getattr(client, "_pending", ()))


def _heartbeat_client(conf: dict):
    from botocore.config import Config

    from ops.deploy.clients import client

    # Short timeouts and one retry: a beat must not outlast the margin between
    # two beats and the timeout (a default client could wait minutes).
    quick = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return client("sqs", endpoint_url=conf.get("endpoint_url"), region=conf["region"], config=quick)


class WorkerConsumer(EventsConsumer):
    heartbeat: VisibilityHeartbeat | None = None

    def create_task_handler(self, promise=promise):
        """Celery's handler for each received message, with the message tracked by the heartbeat first."""
        handle = super().create_task_handler(promise)
        heartbeat = self.start_heartbeat()
        if heartbeat is None:
            return handle

        def on_task_received(message):
            heartbeat.track(message)
            return handle(message)

        return on_task_received

    def start_heartbeat(self) -> VisibilityHeartbeat | None:
        """One heartbeat per worker process, kept across Consumer restarts (a lost connection)."""
        conf = self.app.conf.get("imageshare_visibility_heartbeat")
        if not conf:
            return None
        if self.heartbeat is None:
            self.heartbeat = VisibilityHeartbeat(
                _heartbeat_client(conf),
                visibility_timeout=conf["visibility_timeout"],
                interval=conf["interval"],
                max_hold=conf["max_hold"],
            )
            self.heartbeat.start()
            log.info(
                "visibility heartbeat: held messages extended to %ss every %ss",
                conf["visibility_timeout"],
                conf["interval"],
            )
        return self.heartbeat

    def stop(self):
        self.release_open_receives()
        super().stop()

    def shutdown(self):
        """After the pool has finished (warm) or been terminated (cold): give back what is still held.

        Celery calls this once every worker step has stopped, so the tasks in
        hand are done and acknowledged; a message still held was prefetched
        and never started. kombu's channel close would make it visible only
        after ``wait_time_seconds``; the heartbeat releases it at once. The
        thread is stopped first, so it cannot extend a message after that.
        """
        heartbeat = self.heartbeat
        if heartbeat is not None:
            heartbeat.stop()
        try:
            super().shutdown()
        finally:
            if heartbeat is not None:
                try:
                    released = heartbeat.release()
                    if released:
                        log.info("released %d prefetched message(s) at shutdown", released)
                except Exception:  # best effort: SQS shows them again after the timeout anyway
                    log.warning("could not release held messages at shutdown", exc_info=True)
                log.info(heartbeat.summary())

    def release_open_receives(self) -> None:
        """Let the open long poll return, so kombu can give back what it brings.

        1. Cancel the task consumer: from now on kombu releases (visibility 0)
           any message that arrives instead of handing it to us.
        2. Run the event loop until no SQS request is open, bounded by the
           poll's wait time plus a margin.
        """
        hub, consumer = self.hub, self.task_consumer
        client = getattr(hub, "_current_http_client", None) if hub is not None else None
        if client is None or consumer is None:
            return
        try:
            consumer.cancel()
        except Exception:  # the connection may already be gone: then so is the poll
            log.debug("task consumer cancel failed at shutdown", exc_info=True)
            return
        wait = self.app.conf.broker_transport_options.get("wait_time_seconds", 20)
        deadline = time.monotonic() + wait + EXTRA_WAIT_SECONDS
        started = time.monotonic()
        try:
            while _requests_in_flight(client) and time.monotonic() < deadline:
                hub.run_once()
        except Exception:  # best effort: the shutdown itself must go on
            log.warning("could not wait for the open SQS receive at shutdown", exc_info=True)
            return
        log.info("open SQS receives settled before shutdown in %.1f s", time.monotonic() - started)
