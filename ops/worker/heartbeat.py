"""The visibility heartbeat: a short SQS visibility timeout that a live worker keeps extending.

The problem: a worker killed outright (kill -9 of the whole process group, a
lost instance) runs no shutdown code, so the messages it had received stay
invisible for the queue's whole visibility timeout before SQS hands them to
another worker. With a timeout longer than any task (300 s for a 120 s time
limit) that was a five-minute wait for those uploads; with a short timeout
alone, a task that runs longer than it would be handed to a second worker
while the first is still working on it.

The design: the queue hides a received message for a short time
(``SQS_VISIBILITY_TIMEOUT``, 45 s), and the worker's main process, which
receives and (with ``task_acks_late``) acknowledges every message, extends
the messages it holds:

- ``track`` is called by the worker's Consumer (``ops/worker/consumer.py``)
  for every message it receives, before Celery looks at it: running tasks,
  prefetched ones not started yet and ETA (retry countdown) ones alike.
- A daemon thread wakes every second and, for each held message not yet
  acknowledged whose last extension is ``SQS_VISIBILITY_HEARTBEAT_SECONDS``
  (15 s) old, calls ``ChangeMessageVisibility`` with its receipt handle and the
  full timeout (batched: ``ChangeMessageVisibilityBatch``, up to ten per call).
  A message acknowledged (deleted), rejected or requeued is dropped; so is
  one SQS no longer knows by that handle.
- On shutdown, after the pool has finished the tasks in hand, whatever is
  still held was never going to be finished here (prefetched, never started):
  ``release`` makes it visible again at once (visibility 0).

So a live worker keeps its messages for as long as it works on them, and a
dead one (or a wedged one: see ``max_hold``) loses them within the timeout.
A task shorter than the heartbeat interval costs no extra SQS call.

Why this and not something Celery or kombu offer:

- Celery has no lease renewal for SQS, and kombu's SQS transport changes a
  message's visibility only for a ``backoff_policy`` (after a failure), a
  requeue, or a message that arrives for a cancelled consumer.
- kombu's own ``visibility_timeout`` transport option applies only to queues
  kombu creates; with predefined queues the queue's attribute, set by
  ``ops/deploy/clients.py: ensure_queues``, is what SQS uses.
- For kombu's SQS transport a message's ``delivery_tag`` is its SQS
  ``ReceiptHandle`` and ``delivery_info["sqs_queue"]`` is its queue URL
  (``kombu/transport/SQS/__init__.py: _envelope_payload``), and
  ``Message.acknowledged`` says whether it was acked, rejected or requeued:
  all this needs is public on the message; kombu's channel state is not used.
- A thread, not a timer on the worker's event loop: the loop is not running
  during a warm shutdown while the pool finishes long tasks, and those must
  stay hidden too. The thread has its own boto3 client (clients are
  thread-safe) with short timeouts, so a slow SQS never blocks the loop and
  a slow call cannot outlast the margin (timeout minus interval, 30 s).

``max_hold`` bounds how long one message is extended (by default the
prefetch multiplier plus one task time limits, plus two minutes: longer than
any legitimate hold: a wait for a pool slot behind prefetched messages, a
retry countdown, the run itself; celeryconfig.py). A main process that is alive
but wedged, and never acknowledges, cannot hide a message for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

BATCH = 10  # ChangeMessageVisibilityBatch takes at most ten entries
# SQS no longer knows the message by this handle: deleted (acknowledged in the
# meantime), already visible again, or a handle from an older receive.
GONE = frozenset({"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight"})


def _code(error: str) -> str:
    return error.rsplit(".", 1)[-1]  # "AWS.SimpleQueueService.MessageNotInflight" -> "MessageNotInflight"


@dataclass
class Held:
    message: Any  # the kombu Message: ``acknowledged`` tells when it is done with
    queue_url: str
    receipt: str
    received: float
    extended: float  # when SQS last restarted its visibility clock (at receipt, then each extension)


class VisibilityHeartbeat:
    def __init__(
        self,
        sqs,
        *,
        visibility_timeout: int,
        interval: float,
        max_hold: float,
        clock: Callable[[], float] = time.monotonic,
        tick: float = 1.0,
    ):
        if visibility_timeout < 3 * interval:
            raise ValueError("the visibility timeout must be at least three heartbeat intervals")
        self.sqs = sqs
        self.visibility_timeout = int(visibility_timeout)
        self.interval = interval
        self.max_hold = max_hold
        self.clock = clock
        self.tick = tick
        self._held: dict[str, Held] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing_since: float | None = None
        # What it cost, logged at shutdown: SQS requests made and messages they covered.
        self.stats = {"tracked": 0, "calls": 0, "extended": 0, "released": 0, "given_up": 0}

    # --- bookkeeping (called from the worker's event loop) -------------------------
    def track(self, message) -> None:
        """Hold a message just received from SQS until it is acknowledged."""
        receipt = getattr(message, "delivery_tag", None)
        queue_url = (getattr(message, "delivery_info", None) or {}).get("sqs_queue")
        if not receipt or not queue_url:
            return  # not an SQS message: nothing to extend
        now = self.clock()
        with self._lock:
            self._held[receipt] = Held(message, queue_url, receipt, received=now, extended=now)
            self.stats["tracked"] += 1

    def held(self) -> list[Held]:
        with self._lock:
            return list(self._held.values())

    # --- one pass (called by the thread, or directly by tests) ---------------------
    def beat(self) -> int:
        """Extend every held message whose last extension is an interval old; return how many were extended.

        1. Forget messages acknowledged (acked, rejected, requeued) since.
        2. Forget messages held longer than ``max_hold``: SQS shows them again.
        3. Extend the others that are due, back to the full timeout.
        """
        now = self.clock()
        due = []
        with self._lock:
            for receipt, held in list(self._held.items()):
                if held.message.acknowledged:
                    del self._held[receipt]
                elif now - held.received >= self.max_hold:
                    del self._held[receipt]
                    self.stats["given_up"] += 1
                    log.warning(
                        "message %s held %.0fs without an acknowledgement: no longer extended, SQS will redeliver it",
                        receipt[:16],
                        now - held.received,
                    )
                elif now - held.extended >= self.interval:
                    due.append(held)
        if not due:
            return 0
        changed = self._change_visibility(due, self.visibility_timeout)
        for held in changed:
            held.extended = now  # the call came after ``now``: the real deadline is a little later still
        self.stats["extended"] += len(changed)
        return len(changed)

    def release(self) -> int:
        """Give back at once (visibility 0) every held message not acknowledged; forget them all.

        Called at shutdown once the pool has finished: what is still held was
        never started here, or its process died, and another worker should
        have it now rather than after the timeout.
        """
        with self._lock:
            left = [h for h in self._held.values() if not h.message.acknowledged]
            self._held.clear()
        released = self._change_visibility(left, 0) if left else []
        self.stats["released"] += len(released)
        return len(released)

    def _change_visibility(self, entries: list[Held], timeout: int) -> list[Held]:
        """ChangeMessageVisibilityBatch per queue, ten at a time; return the entries SQS accepted.

        An entry SQS reports gone is forgotten. An entry that failed otherwise
        (or a whole call that failed: network, throttling) is kept, so the
        next tick tries again while there is still time.
        """
        done: list[Held] = []
        by_queue: dict[str, list[Held]] = {}
        for held in entries:
            by_queue.setdefault(held.queue_url, []).append(held)
        for queue_url, group in by_queue.items():
            for start in range(0, len(group), BATCH):
                chunk = group[start : start + BATCH]
                try:
                    self.stats["calls"] += 1
                    answer = self.sqs.change_message_visibility_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": h.receipt, "VisibilityTimeout": timeout}
                            for i, h in enumerate(chunk)
                        ],
                    )
                except (BotoCoreError, ClientError) as exc:
                    self._call_failed(exc)
                    continue
                self._failing_since = None
                for ok in answer.get("Successful", []):
                    done.append(chunk[int(ok["Id"])])
                for failed in answer.get("Failed", []):
                    held = chunk[int(failed["Id"])]
                    if _code(failed.get("Code", "")) in GONE:
                        with self._lock:
                            self._held.pop(held.receipt, None)
                    else:
                        log.warning("could not change the visibility of a message: %s", failed)
        return done

    def _call_failed(self, exc: Exception) -> None:
        now = self.clock()
        if self._failing_since is None:
            self._failing_since = now
            log.warning("visibility heartbeat: SQS call failed (%s); retrying every %.0fs", exc, self.tick)
        elif now - self._failing_since >= self.visibility_timeout - self.interval:
            log.error(
                "visibility heartbeat failing for %.0fs: held messages may be handed to another worker (%s)",
                now - self._failing_since,
                exc,
            )

    # --- the thread -------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sqs-visibility-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the thread (it finishes its current call: bounded by the client's timeouts)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.tick):
            try:
                self.beat()
            except Exception:  # never let the thread die: the next tick tries again
                log.exception("visibility heartbeat pass failed")

    def summary(self) -> str:
        s = self.stats
        return (
            f"visibility heartbeat: {s['tracked']} messages held, {s['extended']} extensions and "
            f"{s['released']} releases in {s['calls']} SQS calls, {s['given_up']} given up"
        )
