"""Stranded uploads: a pending image whose message is gone is queued again.

An image stays "pending" from its upload until the task marks it ready or
failed; meanwhile its message travels on SQS. If that message is lost, nothing
would ever finish the image: the enqueue failed after the row was committed,
the local SQS (moto, in memory) was restarted, or a message outlived the
queue's retention. A worker that dies is not one of these: its messages come
back by themselves within the visibility timeout (ops/worker/heartbeat.py).

The rule, run by the periodic duties (``duties.stranded_sweep``):

- stranded: pending, and queued (``enqueued_at``; ``created_at`` for a row
  never queued) more than ``STRANDED_AFTER_SECONDS`` ago (900). Longer than a
  healthy backlog takes to drain (a full ``UPLOAD_BACKLOG_LIMIT`` of 5 000 at
  the hook's eight workers, two tasks each, one to two seconds a photo: 5 to
  10 minutes), because SQS cannot say which images its messages belong to.
  A re-dispatch that comes too early costs a duplicate message only.
- re-dispatched: a new message, then ``enqueued_at`` = now, so the next one
  waits a full delay again. The message first: a failure between the two
  leaves a duplicate message (the task skips a ready image; renditions have
  fixed keys), never an image with no message.
- but an image already tried ``SQS_MAX_RECEIVE_COUNT`` times (``attempts``,
  counted by the task at each start) is marked failed instead, with the
  dead-letter sweep's retryable reason: its message most likely kills the
  worker that runs it, and queueing it again would only go round that loop.

Counted: the images stranded now (from the database, on every read) and
how many were re-dispatched (a counter in the shared cache: Redis in
production, files under var/ in the local stack; it restarts from 0 when the
cache is flushed, which Prometheus counters tolerate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from imageshare.images.models import Image

log = logging.getLogger(__name__)

BATCH = 500  # per pass: bounded, so one pass never runs for minutes or floods the queue
TOTAL_KEY = "imageshare:stranded:redispatched_total"
LAST_KEY = "imageshare:stranded:last"


@dataclass(frozen=True)
class SweepResult:
    redispatched: int = 0
    failed: int = 0
    left: int = 0  # stranded images this pass did not reach (batch limit, or SQS unreachable)


def stranded_images(now: datetime | None = None):
    """Pending images queued longer than STRANDED_AFTER_SECONDS ago, oldest first."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.STRANDED_AFTER_SECONDS)
    return Image.objects.filter(
        Q(enqueued_at__lt=cutoff) | Q(enqueued_at__isnull=True, created_at__lt=cutoff),
        status=Image.Status.PENDING,
    ).order_by("enqueued_at", "created_at")


def redispatch_stranded(now: datetime | None = None, batch: int = BATCH) -> SweepResult:
    """Queue every stranded image again (at most ``batch`` per pass); return what was done.

    1. An image tried SQS_MAX_RECEIVE_COUNT times: failed, retryable by an operator.
    2. Any other: a new message, then its ``enqueued_at`` moves to now.
    3. SQS unreachable: stop here; the next pass tries again.
    """
    from thumbnails.tasks import make_renditions

    now = now or timezone.now()
    found = list(stranded_images(now).values_list("pk", "enqueued_at", "attempts")[: batch + 1])
    more = len(found) > batch
    found = found[:batch]
    redispatched = failed = 0
    for n, (pk, enqueued_at, attempts) in enumerate(found):
        if attempts >= settings.SQS_MAX_RECEIVE_COUNT:
            failed += Image.objects.filter(pk=pk, status=Image.Status.PENDING).update(
                status=Image.Status.FAILED,
                failure_code="processing_crashed",
                failure_reason=(
                    f"Processing was tried {attempts} times without finishing; the original is kept and can be retried."
                ),
                updated_at=now,
            )
            continue
        try:
            make_renditions.delay(str(pk))
        except Exception as exc:  # SQS unreachable: the rest waits for the next pass
            log.warning("stranded uploads: queue unavailable (%s); %d left for the next pass", exc, len(found) - n)
            _record(redispatched, now)
            return SweepResult(redispatched, failed, left=len(found) - n)
        # Only if still pending and not queued again meanwhile (an operator retry).
        Image.objects.filter(pk=pk, status=Image.Status.PENDING, enqueued_at=enqueued_at).update(
            enqueued_at=now, updated_at=now
        )
        redispatched += 1
    _record(redispatched, now)
    if redispatched or failed:
        log.warning("stranded uploads: %d queued again, %d marked failed (tried too often)", redispatched, failed)
    return SweepResult(redispatched, failed, left=1 if more else 0)


def _record(redispatched: int, now: datetime) -> None:
    if not redispatched:
        return
    try:
        cache.set(TOTAL_KEY, redispatched_total() + redispatched, timeout=None)  # one writer: the lease holder
        cache.set(LAST_KEY, {"at": now, "count": redispatched}, timeout=None)
    except Exception:  # the count is for operators; the re-dispatch itself happened
        log.warning("could not record the stranded re-dispatch count", exc_info=True)


def redispatched_total() -> int:
    try:
        return int(cache.get(TOTAL_KEY, 0))
    except Exception:
        return 0


def last_redispatch() -> dict | None:
    """{"at": datetime, "count": int} of the last pass that re-dispatched anything, or None."""
    try:
        return cache.get(LAST_KEY)
    except Exception:
        return None
