"""The worker's Consumer: events on their own channel, and no message stranded at shutdown.

The stranding (kombu #1819, celery #10172): a worker keeps a long poll
(ReceiveMessage, up to ``wait_time_seconds``) open on SQS at all times. On a
warm shutdown Celery leaves its event loop and the process exits with that
poll still open. SQS still answers it: a message that arrives in that window
is marked received, sent to a socket nobody reads, and stays invisible for
the queue's whole visibility timeout (300 s here). Nothing is lost, but the
upload waits five minutes, and the scaling hook stops workers after every
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

from ops.worker.events import EventsConsumer

log = logging.getLogger(__name__)

EXTRA_WAIT_SECONDS = 2.0  # beyond the long poll's own wait: one slow response


def _requests_in_flight(client) -> int:
    """Open and queued requests of kombu's curl client (its only HTTP client)."""
    curls = getattr(client, "_curls", None)
    free = getattr(client, "_free_list", None)
    if curls is None or free is None:
        return 0
    return len(curls) - len(free) + len(getattr(client, "_pending", ()))


class WorkerConsumer(EventsConsumer):
    def stop(self):
        self.release_open_receives()
        super().stop()

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
