import uuid

from django.conf import settings
from django.db import models


class Image(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    # A random id: URLs reveal nothing about how many images exist.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null only for anonymous uploads, which open mode allows.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="images", null=True, blank=True
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    original_key = models.CharField(max_length=255)
    original_name = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Wall time of the last successful resize task (fetch, render, store): the
    # scaling hook's measured processing time.
    processing_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.original_name or self.id} ({self.status})"


class Rendition(models.Model):
    """One stored rendition. (image, name) is unique: re-running a task updates in place.

    ``name`` is the size name ("small") for the main encoding and the size
    name with the format ("small.webp") for an extra encoding."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="renditions")
    name = models.CharField(max_length=64)
    format = models.CharField(max_length=8)
    key = models.CharField(max_length=255)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "name"], name="unique_rendition")]
        ordering = ["width"]

    def __str__(self):
        return f"{self.name} {self.width}x{self.height}"


class Analysis(models.Model):
    """What the analysis stage (thumbnails/analysis.py) found in an image: its faces, and who wears a mask.

    One per image, written by the analysis worker; ``num_masked`` and
    ``num_unmasked`` stay null while no mask classifier answers
    (``mask_reason`` says why), so an unknown is never shown as a count.
    """

    class Status(models.TextChoices):
        DONE = "done"
        FAILED = "failed"

    image = models.OneToOneField(Image, on_delete=models.CASCADE, primary_key=True, related_name="analysis")
    status = models.CharField(max_length=16, choices=Status.choices)
    num_faces = models.PositiveIntegerField(null=True, blank=True)
    num_masked = models.PositiveIntegerField(null=True, blank=True)
    num_unmasked = models.PositiveIntegerField(null=True, blank=True)
    mask_reason = models.CharField(max_length=255, blank=True)
    # [{"box": [x, y, w, h] in the original's upright pixels, "masked": true | false | null}]
    faces = models.JSONField(default=list)
    timings = models.JSONField(default=dict)  # stage -> ms
    model = models.CharField(max_length=128, blank=True)  # the face detector, e.g. "opencv-haar:..."
    version = models.CharField(max_length=64, blank=True)
    mask_model = models.CharField(max_length=128, blank=True)
    mask_version = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"analysis of {self.image_id}: {self.num_faces} faces ({self.status})"
