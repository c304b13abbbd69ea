"""Worker events on a separate channel (Redis), so Flower can see SQS work.

Why: SQS has no broadcast, so Celery cannot carry monitoring events over it
(Celery switches its event exchange to fanout only for Redis and Pub/Sub;
on SQS the topic bindings live in each process's memory and events are
dropped). Tasks stay on SQS; only the worker's *events* go to Redis:

- ``EventsConsumer`` is the worker's Consumer (Celery's documented
  ``worker_consumer`` setting) with ``connection_for_write`` pointed at the
  events URL. The Events bootstep is that method's only caller, so tasks and
  sub-tasks are untouched (unlike ``broker_write_url``, which would send
  sub-tasks to the wrong broker).
- ``BestEffortEventDispatcher`` makes the channel best-effort: a publish
  that fails opens a circuit for a few seconds (events are buffered, up to a
  bound, and dropped beyond it), so a Redis that is down or hanging costs
  the worker at most one short timeout per interval, never its work.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from celery.events.dispatcher import EventDispatcher
from celery.worker.consumer import Consumer

log = logging.getLogger(__name__)

# Short timeouts and a single connection attempt: kombu's default is to retry
# connecting forever, which would block the worker's event loop.
EVENTS_TRANSPORT_OPTIONS = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    "connect_retries_timeout": 1,
    "socket_timeout": 1,
    "socket_connect_timeout": 1,
    "retry_on_timeout": False,
    "health_check_interval": 0,
}
BUFFER_LIMIT = 5000  # events kept while the channel is down; older ones are dropped
OPEN_CIRCUIT_SECONDS = (2, 30)  # first and longest pause after a failed publish


class EventsConsumer(Consumer):
    def connection_for_write(self, url=None, heartbeat=None):
        events_url = self.app.conf.get("imageshare_events_url")
        if url is None and events_url:
            return self.app.connection_for_write(
                url=events_url, heartbeat=heartbeat, transport_options=EVENTS_TRANSPORT_OPTIONS
            )
        return super().connection_for_write(url=url, heartbeat=heartbeat)


class BestEffortEventDispatcher(EventDispatcher):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._outbound_buffer = deque(self._outbound_buffer, maxlen=BUFFER_LIMIT)
        self._closed_until = 0.0
        self._pause = OPEN_CIRCUIT_SECONDS[0]

    def _publish(self, event, producer, routing_key, retry=False, retry_policy=None, **kwargs):
        # Written out (not super()) because the parent swallows the error,
        # and the circuit needs to know a publish failed.
        if producer is None:
            return
        if time.monotonic() < self._closed_until:
            self._outbound_buffer.append((event, routing_key))
            return
        try:
            producer.publish(
                event,
                routing_key=routing_key,
                exchange=self.exchange.name,
                retry=False,
                declare=[self.exchange],
                serializer=self.serializer,
                headers=self.headers,
                delivery_mode=self.delivery_mode,
            )
        except Exception as exc:
            self._outbound_buffer.append((event, routing_key))
            self._closed_until = time.monotonic() + self._pause
            log.warning("events channel unavailable (%s); monitoring paused %ss, work continues", exc, self._pause)
            self._pause = min(self._pause * 2, OPEN_CIRCUIT_SECONDS[1])
            return
        if self._pause != OPEN_CIRCUIT_SECONDS[0]:
            log.info("events channel is back")
            self._pause = OPEN_CIRCUIT_SECONDS[0]
            # Send what was kept while it was down (bounded by BUFFER_LIMIT).
            pending = list(self._outbound_buffer)
            self._outbound_buffer.clear()
            for ev, rk in pending:
                self._publish(ev, producer, rk)
