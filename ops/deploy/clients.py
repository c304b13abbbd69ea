"""Create the S3 bucket and SQS queues the app needs (idempotent).

Used by the local stack on moto at start-up and by the tests; the production
provisioning will build on the same definitions.
"""

from __future__ import annotations

import json

import boto3
from botocore.config import Config


def client(service: str, *, endpoint_url: str | None, region: str, config: Config | None = None):
    """A boto3 client for AWS, or for the local endpoint (moto) when one is given.

    ``config`` is merged over the defaults, e.g. shorter timeouts for a caller
    that must not wait a minute on one call (the worker's visibility heartbeat).
    """
    base = Config(retries={"max_attempts": 3, "mode": "standard"})
    kwargs = {"region_name": region, "config": base.merge(config) if config else base}
    if endpoint_url:
        kwargs.update(endpoint_url=endpoint_url, aws_access_key_id="testing", aws_secret_access_key="testing")
        if service == "s3":
            kwargs["config"] = kwargs["config"].merge(Config(s3={"addressing_style": "path"}))
    return boto3.client(service, **kwargs)


def upload_cors_rules(origins: list[str]) -> dict:
    """The bucket's CORS rules: the site's pages (``origins``) may POST files to it (direct uploads)."""
    return {
        "CORSRules": [
            {
                "ID": "direct-uploads",
                "AllowedOrigins": list(origins),
                "AllowedMethods": ["POST"],
                "AllowedHeaders": ["*"],
                "ExposeHeaders": ["ETag", "Location"],
                "MaxAgeSeconds": 3600,
            }
        ]
    }


def ensure_bucket(s3, name: str, region: str, cors_origins: list[str] | None = None) -> None:
    """1. Create the bucket unless it exists. 2. Block all public access: URLs are presigned.
    3. With ``cors_origins`` (the web tier's origins), let those pages POST files to it (direct uploads)."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if name not in existing:
        if region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if cors_origins:
        s3.put_bucket_cors(Bucket=name, CORSConfiguration=upload_cors_rules(cors_origins))


def ensure_queues(
    sqs, name: str, dlq_name: str, *, visibility_timeout: int, max_receive_count: int, wait_seconds: int = 10
) -> tuple[str, str]:
    """Create the dead-letter queue, then the work queue redriving into it.

    1. The DLQ keeps failed messages for 14 days (the SQS maximum) for inspection.
    2. The work queue gets the visibility timeout (short: a live worker
       extends the messages it holds, see ops/worker/heartbeat.py), long
       polling, and a RedrivePolicy: after ``max_receive_count`` receives a
       message moves to the DLQ instead of cycling forever.
    Re-running sets the same attributes: nothing is duplicated.
    """
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attributes = {
        "VisibilityTimeout": str(visibility_timeout),
        "ReceiveMessageWaitTimeSeconds": str(wait_seconds),
        "MessageRetentionPeriod": "1209600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
    }
    try:
        queue_url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        # Exists with other attributes (e.g. an older visibility timeout): update in place.
        queue_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
    return queue_url, dlq_url


def every(aws_client, method: str, path: str, **kwargs) -> list:
    """Every item across all pages of a list/describe call (``path`` is JMESPath, e.g. "Roles[]").

    AWS (and moto) paginate these calls; reading only the first page would
    make an existing resource look missing once an account holds many.
    """
    pages = aws_client.get_paginator(method).paginate(**kwargs)
    return [item for item in pages.search(path) if item is not None]


def matches(wanted, current) -> bool:
    """Whether ``current`` (as AWS describes it) has every field of ``wanted``: AWS adds fields of its own."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(matches(v, current.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and len(wanted) == len(current) and all(map(matches, wanted, current))
    return wanted == current
