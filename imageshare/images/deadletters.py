"""Images whose resize message ended in the dead-letter queue must not stay "pending" forever.

A message lands there after SQS delivered it ``SQS_MAX_RECEIVE_COUNT`` times
without a worker finishing it (a worker killed mid-task each time, e.g. out of
memory). ``sweep`` reads such messages, marks their images failed with a
reason the user sees, and deletes the messages; the originals stay in S3, so
an operator can still retry.
"""

from __future__ import annotations

import base64
import json
import logging

from django.conf import settings
from django.utils import timezone

from .models import Image

log = logging.getLogger(__name__)

ANALYSIS_TASK = "thumbnails.analysis.analyse_image"


def image_id_of(body: str) -> str | None:
    """The image id in a Celery message as kombu puts it on SQS (base64 JSON envelopes)."""
    try:
        envelope = json.loads(base64.b64decode(body))
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def task_of(body: str) -> str | None:
    """The Celery task name in a message as kombu puts it on SQS; None if unreadable."""
    try:
        return str(json.loads(base64.b64decode(body))["headers"]["task"])
    except (ValueError, KeyError, TypeError):
        return None


def _fail_analysis(image_id: str) -> None:
    """An analysis that kept killing its worker: recorded failed; the image's thumbnails are not touched."""
    from thumbnails.analysis import _record_failure

    _record_failure(image_id, f"Analysis stopped {settings.SQS_MAX_RECEIVE_COUNT} times without finishing.")


def sweep(sqs, dlq_url: str, max_batches: int = 10) -> int:
    """Mark the images of dead-lettered resize messages failed (an analysis message fails only
    the analysis, which shares the dead-letter queue); return how many images changed."""
    changed = 0
    for _ in range(max_batches):  # bounded: a few hundred messages per call at most
        batch = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not batch:
            break
        for message in batch:
            image_id = image_id_of(message["Body"])
            if image_id and task_of(message["Body"]) == ANALYSIS_TASK:
                _fail_analysis(image_id)
            elif image_id:
                changed += Image.objects.filter(pk=image_id, status=Image.Status.PENDING).update(
                    status=Image.Status.FAILED,
                    failure_code="processing_crashed",
                    failure_reason=(
                        f"Processing stopped {settings.SQS_MAX_RECEIVE_COUNT} times without finishing; "
                        "the original is kept and can be retried."
                    ),
                    updated_at=timezone.now(),
                )
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
    if changed:
        log.warning("marked %s dead-lettered images failed", changed)
    return changed
