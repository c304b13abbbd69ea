"""Periodic duties: the scaling hook, the dead-letter sweep and the stranded-upload sweep, each on its own interval.

Exactly one process runs them, whatever the number of web nodes: in
production every web node of the group starts ``manage.py duties``, and the
processes compete for one database lease (``Lease``). The holder renews it on
every pass; if it dies, another takes over once the lease has expired
(``DUTIES_LEASE_SECONDS``). A database row rather than a Redis lock because
the database is the one service every node already shares, SQLite included.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import Lease

log = logging.getLogger(__name__)

LEASE_NAME = "duties"


def holder_id() -> str:
    """Who holds a lease: host, pid and a random part (a pid can be reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def hold_lease(name: str, holder: str, ttl_seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while another holder's lease is live.

    One conditional UPDATE decides (atomic on SQLite and PostgreSQL alike);
    the INSERT covers the very first holder, and a lost INSERT race just
    means someone else got there first.
    """
    now = timezone.now()
    expires = now + timedelta(seconds=ttl_seconds)
    taken = Lease.objects.filter(Q(holder=holder) | Q(expires_at__lt=now), name=name).update(
        holder=holder, expires_at=expires
    )
    if taken:
        return True
    try:
        with transaction.atomic():
            Lease.objects.create(name=name, holder=holder, expires_at=expires)
        return True
    except IntegrityError:
        return False


def release_lease(name: str, holder: str) -> None:
    """Give the lease up at once on a clean stop, so a standby takes over on its next pass."""
    Lease.objects.filter(name=name, holder=holder).delete()


def dead_letter_sweep(sqs) -> None:
    """Images whose message died in the DLQ become "failed" instead of "pending" forever."""
    from imageshare.images.deadletters import sweep

    dlq = settings.SQS_DEAD_LETTER_QUEUE_URL
    if not dlq:
        dlq = sqs.get_queue_url(QueueName=settings.SQS_DEAD_LETTER_QUEUE_NAME)["QueueUrl"]
    sweep(sqs, dlq)


STRANDED_SWEEP_SECONDS = 60  # how often stranded uploads are looked for (they are older than 15 min)


def stranded_sweep() -> None:
    """Pending images whose message was lost are queued again (see ``stranded``)."""
    from .stranded import redispatch_stranded

    redispatch_stranded()


@dataclass
class Duty:
    name: str
    interval: Callable[[], float]  # read before each run: the scaling interval lives in the database
    run: Callable[[], object]
    due: float = 0.0


def run_duties(duties: list[Duty], stopping, *, once: bool = False, clock=time.monotonic, pause: float = 0.2) -> None:
    """Run each duty when it is due, while this process holds the lease.

    1. Take or renew the lease; without it, only wait (a standby).
    2. Run every due duty; a failing duty is logged and tried again on its
       next interval: one duty's trouble never stops another.
    3. Sleep in small steps, so a stop signal is honoured quickly.
    """
    holder = holder_id()
    ttl = settings.DUTIES_LEASE_SECONDS
    leader = False
    try:
        while not stopping:
            if hold_lease(LEASE_NAME, holder, ttl) != leader:
                leader = not leader
                log.info("periodic duties: %s", "this process runs them" if leader else "another process runs them")
            for duty in duties if leader else ():
                if clock() >= duty.due:
                    duty.due = clock() + duty.interval()
                    try:
                        duty.run()
                    except Exception:
                        log.exception("duty %s failed; next try in %.0fs", duty.name, duty.interval())
            if once:
                return
            # Renew well before the lease expires, and look for due duties often.
            wake = min([d.due for d in duties] + [clock() + ttl / 3]) if leader else clock() + ttl / 3
            while not stopping and clock() < wake:
                time.sleep(pause)
    finally:
        if leader:
            release_lease(LEASE_NAME, holder)
