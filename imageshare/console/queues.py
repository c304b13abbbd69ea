"""Queue depth straight from SQS: Flower cannot show SQS queues, so we do."""

from __future__ import annotations

import functools

from django.conf import settings

from ops.deploy.clients import client

# The SQS attributes an operator cares about, and the names we give them.
ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


@functools.cache
def _sqs():
    return client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)


@functools.cache
def _queue_url(name: str) -> str:
    return _sqs().get_queue_url(QueueName=name)["QueueUrl"]


def _counts(url: str) -> dict[str, int]:
    attrs = _sqs().get_queue_attributes(QueueUrl=url, AttributeNames=list(ATTRIBUTES))["Attributes"]
    return {name: int(attrs.get(key, 0)) for key, name in ATTRIBUTES.items()}


def queue_depth() -> dict:
    """Visible, in-flight and delayed messages of the work queues (resize, extras, analysis) and the dead-letter queue.

    Raises botocore errors when SQS cannot be reached; callers decide what to show.
    """
    work = settings.SQS_QUEUE_URL or _queue_url(settings.SQS_QUEUE_NAME)
    extras = settings.SQS_EXTRAS_QUEUE_URL or _queue_url(settings.SQS_EXTRAS_QUEUE_NAME)
    analysis = settings.SQS_ANALYSIS_QUEUE_URL or _queue_url(settings.SQS_ANALYSIS_QUEUE_NAME)
    dead = settings.SQS_DEAD_LETTER_QUEUE_URL or _queue_url(settings.SQS_DEAD_LETTER_QUEUE_NAME)
    return {
        "work": {"name": settings.SQS_QUEUE_NAME, **_counts(work)},
        "extras": {"name": settings.SQS_EXTRAS_QUEUE_NAME, **_counts(extras)},
        "analysis": {"name": settings.SQS_ANALYSIS_QUEUE_NAME, **_counts(analysis)},
        "dead_letter": {"name": settings.SQS_DEAD_LETTER_QUEUE_NAME, **_counts(dead)},
    }
