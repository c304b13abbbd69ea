"""The scaling hook's tick: real policy, real ASG provider on mock_aws, real database."""

import pytest

from imageshare.console.autoscaler import METRIC_NAME, SERIES_METRICS, Autoscaler
from imageshare.console.models import ScalingDecision, ScalingPolicy
from ops.deploy.clients import client
from ops.scaling.providers import AutoScalingGroupProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(asg):
    name, autoscaling = asg
    return name, autoscaling, client("cloudwatch", endpoint_url=None, region="us-east-1")


def queue_reader(visible, in_flight=0):
    return lambda: {"work": {"visible": visible, "in_flight": in_flight, "delayed": 0}}


def capacity(autoscaling, name):
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
        "DesiredCapacity"
    ]


def test_a_backlog_scales_the_group_out_and_the_decision_is_recorded(group):
    name, autoscaling, cloudwatch = group
    hook = Autoscaler(AutoScalingGroupProvider(name, autoscaling), cloudwatch=cloudwatch, read_queue=queue_reader(300))
    d = hook.tick()
    assert d.action == "out" and d.previous == 1 and d.desired > 1
    assert capacity(autoscaling, name) == d.desired
    assert ScalingDecision.objects.count() == 1
    assert "visible" in d.reason
    metrics = cloudwatch.list_metrics(Namespace="imageshare")["Metrics"]
    assert {m["MetricName"] for m in metrics} == {METRIC_NAME, *SERIES_METRICS} - {"QueueDeadLetter"}  # no DLQ read


def test_a_broken_metric_read_skips_the_tick_and_does_not_scale(group):
    name, autoscaling, _ = group

    def broken():
        raise ConnectionError("SQS down")

    d = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=broken).tick()
    assert d.action == "skip" and "SQS down" in d.reason
    assert capacity(autoscaling, name) == 1


def test_policy_changes_apply_on_the_next_tick_without_a_restart(group):
    name, autoscaling, _ = group
    hook = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(1000))
    policy = ScalingPolicy.current()
    policy.max_workers = 2
    policy.save()
    assert hook.tick().desired == 2
    policy.max_workers = 4
    policy.save()
    assert hook.tick().desired == 4
    policy.max_workers = 20  # above the group's own max of 5: the group's bound wins, and it says so
    policy.save()
    d = hook.tick()
    assert d.desired == 5 and "bounds are 1..5" in d.reason
    assert hook.tick().action == "hold"  # at the group's max: no action every tick


def test_a_disabled_hook_observes_but_does_not_act(group):
    name, autoscaling, _ = group
    ScalingPolicy.objects.update_or_create(pk=1, defaults={"enabled": False})
    d = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(1000)).tick()
    assert d.action == "off" and capacity(autoscaling, name) == 1


def test_a_restarted_hook_reads_the_pool_and_its_history_instead_of_assuming(group):
    name, autoscaling, _ = group
    first = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(300))
    out = first.tick()
    # The hook restarts: a new process with nothing in memory.
    second = Autoscaler(AutoScalingGroupProvider(name, autoscaling), read_queue=queue_reader(300))
    assert second.history.last_action_at == pytest.approx(out.at)
    d = second.tick()
    assert d.action == "hold" and d.previous == out.desired  # it saw the pool as it is


def test_bad_policy_values_are_refused_by_the_model():
    from django.core.exceptions import ValidationError

    policy = ScalingPolicy.current()
    policy.min_workers, policy.max_workers = 5, 2
    with pytest.raises(ValidationError):
        policy.full_clean()


def test_images_whose_message_died_in_the_dead_letter_queue_are_marked_failed(
    group, queue, owner_client, django_capture_on_commit_callbacks
):
    """A message SQS gave up on (moved to the DLQ) turns its image from pending to failed on the next sweep."""
    from imageshare.images.models import Image
    from tests.conftest import upload_file

    name, autoscaling, _ = group
    with django_capture_on_commit_callbacks(execute=True):  # the enqueue runs after the commit
        resp = owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    image_id = resp.json()["id"]
    # What SQS does after maxReceiveCount failed receives: the message moves to the DLQ.
    sqs = queue["sqs"]
    (message,) = sqs.receive_message(QueueUrl=queue["queue_url"], MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=queue["dlq_url"], MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=queue["queue_url"], ReceiptHandle=message["ReceiptHandle"])

    from imageshare.console.duties import dead_letter_sweep

    dead_letter_sweep(sqs)
    image = Image.objects.get(pk=image_id)
    assert image.status == "failed" and image.failure_code == "processing_crashed"
    assert not sqs.receive_message(QueueUrl=queue["dlq_url"]).get("Messages")


def test_a_dead_lettered_analysis_fails_the_analysis_not_the_image(
    group, queue, owner_client, django_capture_on_commit_callbacks
):
    """The analysis shares the dead-letter queue: its message gone there says "analysis failed", thumbnails go on."""
    from imageshare.console.duties import dead_letter_sweep
    from imageshare.images.models import Analysis, Image
    from tests.conftest import upload_file

    with django_capture_on_commit_callbacks(execute=True):
        resp = owner_client.post("/api/v1/images", {"image": upload_file()}, HTTP_ACCEPT="application/json")
    image_id = resp.json()["id"]
    sqs = queue["sqs"]
    (message,) = sqs.receive_message(QueueUrl=queue["analysis_url"], MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=queue["dlq_url"], MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=queue["analysis_url"], ReceiptHandle=message["ReceiptHandle"])

    dead_letter_sweep(sqs)
    assert Image.objects.get(pk=image_id).status == "pending"  # its resize message is still queued
    analysis = Analysis.objects.get(image_id=image_id)
    assert analysis.status == "failed" and "without finishing" in analysis.error
    assert not sqs.receive_message(QueueUrl=queue["dlq_url"]).get("Messages")
