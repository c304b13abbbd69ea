"""What an operator does from the console, each recorded in the audit list (``AuditEntry``).

The pool's size: grow and shrink by one, stop, back to automatic. These set
the policy row's manual mode and number; the scaling hook (``autoscaler``)
applies them on its next tick through the provider, the same way on the
local pool and on the EC2 group: the web tier never starts or stops
workers itself (local workers are children of the hook, and die with it).

The queues and the data: redrive the dead-letter queue, delete all
application data. Each returns the sentence the page shows; each is bounded
so one request never runs for minutes.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from imageshare.images.models import Image, Rendition
from ops.deploy.clients import client

from .models import AuditEntry, ScalingDecision, ScalingPolicy

log = logging.getLogger(__name__)

CONFIRM_DELETE = "delete everything"
REDRIVE_BATCHES = 50  # x 10 messages per click
DELETE_PAGES = 100  # x 1000 objects per prefix per click
DATA_PREFIXES = ("originals/", "renditions/")


def audit(user, action: str, detail: str = "") -> AuditEntry:
    entry = AuditEntry.objects.create(user=user, username=user.get_username(), action=action, detail=detail)
    log.warning("console: %s %s: %s", entry.username, action, detail)  # the terminal shows what people do
    return entry


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str


# --- the pool ---------------------------------------------------------------------
def _current_size(policy: ScalingPolicy, pool) -> int:
    """What "one more" counts from: the operator's number in manual mode, else the pool as it is."""
    if policy.manual and policy.manual_desired is not None:
        return policy.manual_desired
    if pool is not None:
        return pool.capacity
    last = ScalingDecision.objects.exclude(desired=None).first()  # the pool cannot be read from here
    return last.desired if last else policy.min_workers


def _set_manual(user, action: str, change, pool) -> Outcome:
    with transaction.atomic():
        policy = ScalingPolicy.objects.select_for_update().get(pk=ScalingPolicy.current().pk)
        before = _current_size(policy, pool)
        after = change(before)
        if after is None:
            return Outcome(False, f"The pool is already at {before}; nothing changed.")
        after = max(0, min(after, policy.max_workers))
        if after == before and policy.manual:
            return Outcome(False, f"The pool stays at {after} (the policy's maximum is {policy.max_workers}).")
        policy.manual, policy.manual_desired = True, after
        policy.save(update_fields=["manual", "manual_desired", "updated_at"])
    audit(user, action, f"manual: {before} -> {after} worker(s)")
    if after == before:
        return Outcome(True, f"Manual mode: the pool is held at {after} (the policy's maximum).")
    return Outcome(True, f"Manual mode: the pool goes from {before} to {after} on the hook's next tick.")


def grow(user, pool) -> Outcome:
    return _set_manual(user, "grow", lambda n: n + 1, pool)


def shrink(user, pool) -> Outcome:
    return _set_manual(user, "shrink", lambda n: n - 1 if n > 0 else None, pool)


def stop(user, pool) -> Outcome:
    """Every worker drains (finishes the tasks in hand) and goes; uploads wait in the queue meanwhile."""
    out = _set_manual(user, "stop", lambda n: 0, pool)
    if not out.ok:
        return out
    return Outcome(True, f"{out.message} Each worker finishes its tasks in hand first; uploads wait in the queue.")


def automatic(user) -> Outcome:
    policy = ScalingPolicy.current()
    if not policy.manual:
        return Outcome(False, "The pool is already automatic.")
    ScalingPolicy.objects.filter(pk=policy.pk).update(manual=False, manual_desired=None, updated_at=timezone.now())
    audit(user, "automatic", f"back to the {policy.policy} policy (was held at {policy.manual_desired})")
    return Outcome(True, f"Automatic: the {policy.policy} policy sizes the pool again from the hook's next tick.")


# --- the dead-letter queue --------------------------------------------------------
def _sqs():
    return client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)


def _url(sqs, url: str | None, name: str) -> str:
    return url or sqs.get_queue_url(QueueName=name)["QueueUrl"]


def routing_key_of(body: str) -> str | None:
    """The queue a Celery message was sent to (kombu's base64 JSON envelope on SQS); None if unreadable."""
    try:
        return json.loads(base64.b64decode(body))["properties"]["delivery_info"]["routing_key"]
    except (ValueError, KeyError, TypeError):
        return None


def redrive(sqs, dlq_url: str, targets: dict[str, str], default_url: str, max_batches: int = REDRIVE_BATCHES) -> int:
    """Move dead-lettered messages back to the queue each came from (send, then delete); how many moved.

    A message is deleted only once its copy is sent: a failure half-way
    leaves a duplicate at worst, which the idempotent task skips.
    """
    moved = 0
    for _ in range(max_batches):
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for m in batch:
            target = targets.get(routing_key_of(m["Body"]) or "", default_url)
            sqs.send_message(QueueUrl=target, MessageBody=m["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
            moved += 1
    return moved


def redrive_dead_letters(user, sqs=None) -> Outcome:
    sqs = sqs or _sqs()
    work = _url(sqs, settings.SQS_QUEUE_URL, settings.SQS_QUEUE_NAME)
    extras = _url(sqs, settings.SQS_EXTRAS_QUEUE_URL, settings.SQS_EXTRAS_QUEUE_NAME)
    analysis = _url(sqs, settings.SQS_ANALYSIS_QUEUE_URL, settings.SQS_ANALYSIS_QUEUE_NAME)
    dlq = _url(sqs, settings.SQS_DEAD_LETTER_QUEUE_URL, settings.SQS_DEAD_LETTER_QUEUE_NAME)
    targets = {settings.SQS_EXTRAS_QUEUE_NAME: extras, settings.SQS_ANALYSIS_QUEUE_NAME: analysis}
    moved = redrive(sqs, dlq, targets, work)
    audit(user, "redrive", f"{moved} dead-lettered message(s) moved back to the work queues")
    cap = REDRIVE_BATCHES * 10
    more = f" (at most {cap} per click: click again for the rest)" if moved >= cap else ""
    return Outcome(True, f"Moved {moved} message(s) from the dead-letter queue back to the work queues{more}.")


# --- all application data ---------------------------------------------------------
def _s3():
    return client("s3", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)


def delete_prefix(s3, bucket: str, prefix: str, max_pages: int = DELETE_PAGES) -> tuple[int, bool]:
    """Delete the objects under ``prefix``, 1000 per call; (how many, whether some are left)."""
    deleted = 0
    for _ in range(max_pages):
        page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if not keys:
            return deleted, False
        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        deleted += len(keys)
    return deleted, bool(s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"))


def delete_everything(user, confirmation: str, s3=None) -> Outcome:
    """Every image row (with its renditions) and every S3 object under originals/ and renditions/.

    Rows first: a worker busy with one of them finds its row gone and
    removes what it wrote (thumbnails.tasks). Accounts are kept.
    """
    if confirmation.strip().lower() != CONFIRM_DELETE:
        return Outcome(False, f'Nothing was deleted: type "{CONFIRM_DELETE}" to confirm.')
    s3 = s3 or _s3()
    _, rows = Image.objects.all().delete()
    images, renditions = rows.get(Image._meta.label, 0), rows.get(Rendition._meta.label, 0)
    objects, left = 0, False
    for prefix in DATA_PREFIXES:
        n, more = delete_prefix(s3, settings.S3_BUCKET, prefix)
        objects, left = objects + n, left or more
    detail = f"{images} image(s), {renditions} rendition row(s), {objects} S3 object(s)"
    audit(user, "delete everything", detail + ("; some objects left" if left else ""))
    tail = " Some S3 objects are left (a bounded pass): run it again." if left else ""
    return Outcome(True, f"Deleted {detail}.{tail}")
