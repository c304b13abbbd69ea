"""The one place that sets up fake AWS for the tests.

Unit tests run against moto's in-process ``mock_aws`` (started once per
session, with the same bucket and queues the local stack creates). The
integration tests in tests/integration start moto's *server* instead.
"""

import os

# Before Django reads its settings: never touch a real AWS account, and let
# mock_aws intercept the default endpoints.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("SQS_QUEUE_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)

import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402


@pytest.fixture(scope="session")
def aws():
    """In-process fake AWS with the app's bucket and queues; yields their names/URLs."""
    from django.conf import settings

    from ops.deploy.clients import client, ensure_bucket, ensure_queues

    with mock_aws():
        s3 = client("s3", endpoint_url=None, region=settings.AWS_REGION)
        sqs = client("sqs", endpoint_url=None, region=settings.AWS_REGION)
        ensure_bucket(s3, settings.S3_BUCKET, settings.AWS_REGION)
        # The work queues (resize, extra sizes, analysis), each with the one dead-letter queue.
        urls = {}
        for key, name in (
            ("queue_url", settings.SQS_QUEUE_NAME),
            ("extras_url", settings.SQS_EXTRAS_QUEUE_NAME),
            ("analysis_url", settings.SQS_ANALYSIS_QUEUE_NAME),
        ):
            urls[key], dlq_url = ensure_queues(
                sqs,
                name,
                settings.SQS_DEAD_LETTER_QUEUE_NAME,
                visibility_timeout=settings.SQS_VISIBILITY_TIMEOUT,
                max_receive_count=settings.SQS_MAX_RECEIVE_COUNT,
            )
        yield {
            "s3": s3,
            "sqs": sqs,
            "bucket": settings.S3_BUCKET,
            "dlq_url": dlq_url,
            **urls,
        }


@pytest.fixture
def queue(aws):
    """The work queues, emptied before the test (PurgeQueue is rate-limited to once a minute)."""
    for url in (aws["queue_url"], aws["extras_url"], aws["analysis_url"]):
        for _ in range(100):
            batch = aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            if not batch.get("Messages"):
                break
            for m in batch["Messages"]:
                aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return aws


@pytest.fixture
def asg(aws, request):
    """A fresh EC2 Auto Scaling group (min 1, max 5, desired 1) in the fake account; yields (name, client)."""
    from ops.deploy.clients import client

    ec2 = client("ec2", endpoint_url=None, region="us-east-1")
    autoscaling = client("autoscaling", endpoint_url=None, region="us-east-1")
    name = f"workers-{request.node.name[:40]}-{len(autoscaling.describe_auto_scaling_groups()['AutoScalingGroups'])}"
    ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": ec2.describe_images()["Images"][0]["ImageId"], "InstanceType": "t3.small"},
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": name},
        MinSize=1,
        MaxSize=5,
        DesiredCapacity=1,
        VPCZoneIdentifier=ec2.describe_subnets()["Subnets"][0]["SubnetId"],
    )
    yield name, autoscaling
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="owner-pass-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="other", password="other-pass-123")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="staffer", password="staff-pass-123", is_staff=True)


@pytest.fixture(autouse=True)
def _no_analysis_wait(settings):
    """No analysis worker runs in unit tests: POST /api/upload answers at once (a test of the wait sets it)."""
    settings.ANALYSIS_WAIT_SECONDS = 0


@pytest.fixture(autouse=True)
def _isolated_cache(settings, tmp_path):
    """Rate-limit counters (cache) and login lockouts start empty in every test."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}
    }


@pytest.fixture
def open_mode(settings):
    settings.IMAGESHARE_MODE = "open"
    return settings


@pytest.fixture
def anon():
    """A client that never logs in (``client`` is the one ``owner_client`` logs in)."""
    from django.test import Client

    return Client()


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def upload_file(name="photo.jpg", data=None, mime="image/jpeg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.support.images import make_image

    return SimpleUploadedFile(name, data if data is not None else make_image(640, 480), content_type=mime)


def stored_image(owner, data: bytes):
    """An image row with ``data`` stored as its original in the fake bucket, as an upload leaves it."""
    import io

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from imageshare.images.models import Image

    probe = PILImage.open(io.BytesIO(data))
    image = Image(owner=owner, content_type="image/jpeg", width=probe.width, height=probe.height, byte_size=len(data))
    image.original_key = f"originals/{image.id}"
    default_storage.save(image.original_key, ContentFile(data))
    image.save()
    return image
