"""An image as JSON: the one payload the API, the seed upload and the pages' templates share.

Belongs here: serialisation of models into plain dicts. No lookups, no
permission checks (the caller found the image through ``access``).
"""

from __future__ import annotations

from django.urls import reverse

from .commands import can_retry
from .links import file_url, image_urls
from .models import Analysis, Image


def image_payload(image: Image, request=None) -> dict:
    renditions = {
        r.name: {
            "width": r.width,
            "height": r.height,
            "content_type": r.content_type,
            "bytes": r.byte_size,
            "url": file_url(image, r.name, request),
        }
        for r in image.renditions.all()
    }
    payload = {
        "id": str(image.id),
        "status": image.status,
        "name": image.original_name,
        "width": image.width,
        "height": image.height,
        "bytes": image.byte_size,
        "content_type": image.content_type,
        "created_at": image.created_at.isoformat() if image.created_at else None,
        "ready_at": image.ready_at.isoformat() if image.ready_at else None,
        "urls": image_urls(image, request),
        "renditions": renditions,
        "analysis": analysis_payload(image, request),
    }
    if request is not None:
        payload["page"] = request.build_absolute_uri(reverse("image", args=[image.id]))
    if image.status == Image.Status.FAILED:
        payload["error"] = {"code": image.failure_code, "message": image.failure_reason}
        payload["retryable"] = can_retry(image)
    return payload


def _analysis_of(image: Image) -> Analysis | None:
    try:
        return image.analysis
    except Analysis.DoesNotExist:
        return None


def analysis_payload(image: Image, request=None) -> dict | None:
    """What the analysis found (faces, masks), or None while it has not run.

    ``num_masked`` and ``num_unmasked`` are null while no mask classifier
    answers; ``mask_reason`` says why. Face boxes are [x, y, width, height]
    in the original's upright pixels.
    """
    analysis = _analysis_of(image)
    if analysis is None:
        return None
    if analysis.status != Analysis.Status.DONE:
        return {"status": analysis.status, "error": analysis.error}
    annotated = any(r.name == "annotated" for r in image.renditions.all())  # the prefetched list, if any
    return {
        "status": analysis.status,
        "num_faces": analysis.num_faces,
        "num_masked": analysis.num_masked,
        "num_unmasked": analysis.num_unmasked,
        "mask_reason": analysis.mask_reason or None,
        "faces": analysis.faces,
        "annotated_url": file_url(image, "annotated", request) if annotated else None,
        "model": {"name": analysis.model, "version": analysis.version},
        "mask_model": {"name": analysis.mask_model, "version": analysis.mask_version},
        "timings_ms": analysis.timings,
    }


def face_counts(image: Image) -> dict:
    """The seed upload's counts: integers once known, else null, with ``mask_reason`` when masks are unknown."""
    analysis = _analysis_of(image)
    if analysis is not None and analysis.status == Analysis.Status.DONE:
        counts: dict = {"num_faces": analysis.num_faces, "num_masked": analysis.num_masked}
        counts["num_unmasked"] = analysis.num_unmasked
        reason = analysis.mask_reason or None
    else:
        counts = {"num_faces": None, "num_masked": None, "num_unmasked": None}
        reason = analysis.error if analysis is not None else "The analysis has not finished yet."
    if reason:
        counts["mask_reason"] = reason
    return counts


# The history page's lists of images by their faces (the elastic-app clients' four, and the two unknowns).
FACE_GROUPS = (
    ("no-faces", "No faces"),
    ("all-masked", "All faces masked"),
    ("none-masked", "No face masked"),
    ("some-masked", "Some faces masked"),
    ("masks-unknown", "Faces, masks not known"),
    ("not-analysed", "Not analysed yet"),
)


def face_group(image: Image) -> str:
    """Which of FACE_GROUPS an image belongs to."""
    analysis = _analysis_of(image)
    if analysis is None or analysis.status != Analysis.Status.DONE or analysis.num_faces is None:
        return "not-analysed"
    if analysis.num_faces == 0:
        return "no-faces"
    if analysis.num_masked is None or analysis.num_unmasked is None:
        return "masks-unknown"
    if analysis.num_masked == analysis.num_faces:
        return "all-masked"
    if analysis.num_unmasked == analysis.num_faces:
        return "none-masked"
    return "some-masked"


def face_groups(images) -> list[tuple[str, str, list[dict]]]:
    """``images`` (with their analysis selected) in FACE_GROUPS' lists: (key, label, [{id, name, counts}])."""
    groups: dict[str, list[dict]] = {key: [] for key, _ in FACE_GROUPS}
    for image in images:
        groups[face_group(image)].append({"id": str(image.id), "name": image.original_name, **face_counts(image)})
    return [(key, label, groups[key]) for key, label in FACE_GROUPS]
