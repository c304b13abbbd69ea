"""Where originals and renditions live: S3 through django-storages.

Belongs here: the object keys, and what a storage failure looks like.
Keys are fixed per image and size, so storing a rendition twice overwrites
it (tasks are idempotent under SQS's at-least-once delivery).
"""

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
