"""Who sees what: the mode, and the lookups every door uses to find an image.

Belongs here: the access rules. Private mode: your own images only. Open
mode: anyone sees any image, but deleting, retrying and adding renditions
stay the owner's. "Not there" and "not yours" answer the same (404), so ids
leak nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404

from .models import Image


def is_open() -> bool:
    return settings.IMAGESHARE_MODE == "open"


def visible_images(user):
    """Images ``user`` may see: their own in private mode, any in open mode."""
    qs = Image.objects.select_related("analysis").prefetch_related("renditions")
    if is_open():
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(owner=user)


def find_visible(user, image_id) -> Image | None:
    """The image, or None when it does not exist *or* the user may not see it (both answer 404)."""
    try:
        return visible_images(user).get(pk=image_id)
    except (Image.DoesNotExist, ValueError, TypeError, ValidationError):  # a malformed id is "not found" too
        return None


def owned_or_404(user, image_id) -> Image:
    """The image if ``user`` owns it (deleting, retrying and adding renditions are the owner's, in both modes).

    Otherwise Http404, which DRF answers as its JSON 404: the same answer for
    "not there" and "not yours", so ids leak nothing.
    """
    image = find_visible(user, image_id)
    if image is None or not user.is_authenticated or image.owner_id != user.pk:
        raise Http404("No such image.")
    return image
