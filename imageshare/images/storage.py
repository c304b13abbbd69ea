"""Where originals and renditions live: S3 through django-storages.

Belongs here: the object keys, and what a storage failure looks like.
Keys are fixed per image and size, so storing a rendition twice overwrites
it (tasks are idempotent under SQS's at-least-once delivery).
"""

import os
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

# What default_storage (S3) raises when it cannot be reached or refuses:
# callers report these as ``errors.Unavailable.storage()``.
STORAGE_ERRORS = (BotoCoreError, ClientError)


def original_key(image_id) -> str:
    return f"originals/{image_id}"


def rendition_key(image_id, name: str, fmt: str, main: bool) -> str:
    """The main rendition has no extension, so its URL is known at upload time
    (before anyone knows if it will be JPEG or PNG); extra formats get one."""
    if main:
        return f"renditions/{image_id}/{name}"
    return f"renditions/{image_id}/{name}.{fmt.lower()}"


# --- the workers' direct S3 client ---------------------------------------------------
# django-storages keeps one boto3 *resource* per thread, and its ``save``
# goes through s3transfer (a managed upload, threads of its own); reading a
# file through ``open`` downloads it with a HEAD first into a spooled
# temporary file. The resize task makes small, known-size objects at fixed
# keys many times a second, so it talks to S3 with one plain client per
# process instead: one GetObject per original, one PutObject per rendition.
_client_lock = threading.Lock()
_client: tuple[int, Any] | None = None  # (pid, client): a forked child builds its own


def s3_client() -> Any:
    """The process's one boto3 S3 client (thread-safe), built on first use and reused.

    Keyed by process id: celery's prefork children never reuse a client
    (and its connection pool) built in the parent before the fork.
    """
    global _client
    pid = os.getpid()
    with _client_lock:
        if _client is None or _client[0] != pid:
            _client = (pid, _build_client())
        return _client[1]


def _build_client() -> Any:
    from botocore.config import Config
    from django.conf import settings

    from ops.deploy.clients import client

    # Enough pooled connections for the task's concurrent puts (thumbnails.tasks.PUT_THREADS).
    config = Config(signature_version=settings.AWS_S3_SIGNATURE_VERSION, max_pool_connections=16)
    return client("s3", endpoint_url=settings.AWS_S3_ENDPOINT_URL, region=settings.AWS_S3_REGION_NAME, config=config)


def write_parameters(key: str, content_type: str) -> dict[str, Any]:
    """What django-storages would send with a PutObject of ``key``: AWS_S3_OBJECT_PARAMETERS (cache
    headers), AWS_DEFAULT_ACL when set, and the Content-Type."""
    from django.core.files.storage import default_storage

    params: dict[str, Any] = default_storage.get_object_parameters(key)  # type: ignore[attr-defined]
    params.setdefault("ContentType", content_type)
    acl = getattr(default_storage, "default_acl", None)
    if acl and "ACL" not in params:
        params["ACL"] = acl
    return params
