from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from django.utils import timezone

from imageshare.images.models import Image


class Command(BaseCommand):
    help = (
        "Local stack: moto keeps S3 in memory, so after a restart the database lists images whose files are "
        "gone. If the bucket holds no originals at all, mark every such image failed with a reason, instead "
        "of showing broken thumbnails."
    )

    def handle(self, *args, **options):
        try:
            _, files = default_storage.listdir("originals/")
        except (BotoCoreError, ClientError) as exc:
            self.stderr.write(f"cannot list the bucket: {exc}")
            return
        if files:
            return
        lost = Image.objects.exclude(status=Image.Status.FAILED).update(
            status=Image.Status.FAILED,
            failure_code="files_lost",
            failure_reason="The local S3 (moto, in memory) was restarted, so this image's files are gone.",
            updated_at=timezone.now(),
        )
        if lost:
            self.stdout.write(
                f"{lost} images from an earlier run have no files any more (moto restarted): marked failed."
            )
