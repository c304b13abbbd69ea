"""The analysis task: thin I/O around the pure processors (thumbnails/processors/), on a queue of its own.

Beside the resize (``thumbnails.tasks``), never in its way: uploads queue
both, this one on SQS_ANALYSIS_QUEUE_NAME, which its own worker consumes,
so a slow model never holds back thumbnails.

Idempotent like the resize: the annotated copy has a fixed key, the rows are
upserted, and an image already analysed is left alone. Only the resize
task's transient errors are retried; a bad image or a bug records a failed
analysis with its reason (the upload's page says "not analysed").
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction

from thumbnails import engine, processors
from thumbnails.tasks import DELIVERY_OPTIONS, ImageTask, fetch_original, put_all

log = logging.getLogger(__name__)

ANNOTATED = "annotated"  # the rendition name of the copy with the face boxes


def _record_failure(image_id: str, error: str) -> None:
    from imageshare.images.models import Analysis, Image

    with transaction.atomic():
        if not Image.objects.select_for_update().filter(pk=image_id).exists():
            return
        if Analysis.objects.filter(image_id=image_id, status=Analysis.Status.DONE).exists():
            return  # a later delivery's failure never hides a result
        Analysis.objects.update_or_create(
            image_id=image_id,
            defaults={"status": Analysis.Status.FAILED, "error": error[:1000]},
        )


class AnalysisTask(ImageTask):
    def record_failure(self, image_id: str, exc: BaseException) -> None:
        """The analysis says 'failed' (and a waiting upload stops waiting)."""
        _record_failure(image_id, f"Analysis failed: {type(exc).__name__}")


def enqueue(image_id: str) -> None:
    """Queue the analysis of an image (after the upload's commit). A queue failure only logs:
    the upload stands, its resize is queued, and the image shows as not analysed yet."""
    try:
        analyse_image.delay(image_id)
    except Exception as exc:
        log.warning("could not queue the analysis of %s: %s", image_id, exc)


def _processors() -> list[processors.Processor]:
    from thumbnails.processors.faces import FaceProcessor  # OpenCV: loaded by the analysis worker only

    return [FaceProcessor()]


@shared_task(bind=True, base=AnalysisTask, name="thumbnails.analysis.analyse_image", **DELIVERY_OPTIONS)
def analyse_image(self: AnalysisTask, image_id: str) -> dict[str, Any]:
    """Find the faces of one image (and who wears a mask), store the annotated copy and the result.

    1. Load the row; stop if it is gone or already analysed.
    2. Fetch the original from S3; decode it at most ANALYSIS_MAX_SIDE on its
       long side with the engine's own steps (shrink-on-load, colour, orientation).
    3. Run the processors (pure).
    4. Put the annotated JPEG to its fixed key.
    5. If the image was deleted meanwhile, remove it and stop; else upsert
       the "annotated" rendition and the Analysis row.
    """
    from imageshare.images.models import Analysis, Image, Rendition
    from imageshare.images.storage import rendition_key, s3_client

    started = time.perf_counter()
    image = Image.objects.filter(pk=image_id).first()
    if image is None:
        return {"image": image_id, "skipped": "missing"}
    if Analysis.objects.filter(image_id=image_id, status=Analysis.Status.DONE).exists():
        return {"image": image_id, "skipped": "done"}

    s3 = s3_client()
    data = fetch_original(s3, image.original_key)
    if data is None:
        _record_failure(image_id, "The original file is gone from storage.")
        return {"image": image_id, "failed": "original_missing"}
    fetched = time.perf_counter()
    try:
        decoded = processors.decode(data, max_pixels=settings.MAX_IMAGE_PIXELS)
    except engine.EngineError as exc:
        _record_failure(image_id, exc.message)
        return {"image": image_id, "failed": exc.code}
    del data
    faces_result, *_ = processors.run(decoded.rgb, _processors())
    from thumbnails.processors.faces import annotate

    found = faces_result.data
    annotated = annotate(decoded.rgb, found["faces"], settings.JPEG_QUALITY)
    height, width = decoded.rgb.shape[:2]
    key = rendition_key(image.id, ANNOTATED, "", main=True)
    put_all(s3, [(key, annotated, "image/jpeg")])  # with a rendition's Cache-Control, as the resize task
    # The boxes as the original's (upright) pixels, which is what the API promises.
    faces = [{"box": [round(v * decoded.scale) for v in f["box"]], "masked": f["masked"]} for f in found["faces"]]
    timings = {
        "fetch": round((fetched - started) * 1000, 1),
        "decode": round(decoded.ms, 1),
        **{k: round(v, 1) for k, v in faces_result.timings.items()},
    }
    with transaction.atomic():
        if not Image.objects.select_for_update().filter(pk=image_id).exists():
            s3.delete_object(Bucket=settings.AWS_STORAGE_BUCKET_NAME, Key=key)
            return {"image": image_id, "skipped": "deleted"}
        Rendition.objects.update_or_create(
            image=image,
            name=ANNOTATED,
            defaults={
                "format": "JPEG",
                "key": key,
                "content_type": "image/jpeg",
                "width": width,
                "height": height,
                "byte_size": len(annotated),
            },
        )
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        Analysis.objects.update_or_create(
            image=image,
            defaults={
                "status": Analysis.Status.DONE,
                "num_faces": found["num_faces"],
                "num_masked": found["num_masked"],
                "num_unmasked": found["num_unmasked"],
                "mask_reason": found["mask_reason"] or "",
                "faces": faces,
                "timings": timings,
                "model": faces_result.model,
                "version": faces_result.version,
                "mask_model": found["mask_model"],
                "mask_version": found["mask_version"],
                "error": "",
            },
        )
    log.info("image %s analysed: %d faces in %.0f ms (%s)", image_id, found["num_faces"], timings["total"], timings)
    return {"image": image_id, "faces": found["num_faces"], "ms": timings["total"]}
