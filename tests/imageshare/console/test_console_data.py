"""The console's data: chart series (CloudWatch or the decision log), percentiles, the collapsed decision history."""

from datetime import timedelta

import pytest
from django.utils import timezone

from imageshare.console.autoscaler import SERIES_METRICS, Autoscaler
from imageshare.console.decisions import collapse
from imageshare.console.models import ScalingDecision
from imageshare.console.series import WINDOW_MINUTES, chart_data, percentile, window
from imageshare.images.models import Image
from ops.deploy.clients import client
from ops.scaling.providers import AutoScalingGroupProvider

pytestmark = pytest.mark.django_db


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def _image(owner, created_ago, ready_ago=None):
    now = timezone.now()
    img = Image.objects.create(owner=owner, original_key="originals/x", width=1, height=1, byte_size=1)
    Image.objects.filter(pk=img.pk).update(
        created_at=now - timedelta(seconds=created_ago),
        ready_at=None if ready_ago is None else now - timedelta(seconds=ready_ago),
        status="ready" if ready_ago is not None else "pending",
    )


def _decision(ago_seconds, **fields):
    action = fields.pop("action", "hold")
    d = ScalingDecision.objects.create(at=0, provider="local", action=action, reason="r", **fields)
    ScalingDecision.objects.filter(pk=d.pk).update(created_at=timezone.now() - timedelta(seconds=ago_seconds))


def test_images_give_tasks_and_uploads_per_minute_and_upload_to_ready_percentiles(owner, aws, settings):
    settings.SQS_QUEUE_NAME = "nothing-published-for-this-queue"  # CloudWatch has nothing: the log answers
    now = timezone.now().replace(second=30, microsecond=0)
    for took in (1, 2, 3, 4, 50):  # five uploads made ready within the current minute
        ready_ago = (timezone.now() - now).total_seconds()
        _image(owner, created_ago=ready_ago + took, ready_ago=ready_ago)
    _image(owner, created_ago=5 * 60)  # an upload five minutes ago, still pending
    _image(owner, created_ago=3600, ready_ago=3500)  # outside the window
    _decision(20, visible=40, in_flight=2, dead_letter=1, running=2, starting=1)
    _decision(10, visible=10, in_flight=4, dead_letter=0, running=3, starting=0)

    c = chart_data(now=now)
    assert len(c["minutes"]) == WINDOW_MINUTES and c["minutes"][-1] == window(now)[-1].isoformat()
    assert c["tasks_per_minute"][-1] == 5 and sum(c["tasks_per_minute"]) == 5
    assert sum(c["uploads_per_minute"]) == 6 and c["uploads_per_minute"][-6] == 1
    assert c["latency_seconds"]["p50"][-1] == pytest.approx(3, abs=0.01)
    assert c["latency_seconds"]["p99"][-1] == pytest.approx(50, abs=0.01)
    assert c["latency_seconds"]["p50"][0] is None  # no reading: a gap, not zero
    assert c["pool_source"] == "decision log"
    # The highest reading of the minute (the two ticks may straddle a minute boundary).
    assert max(v for v in c["queue"]["visible"] if v is not None) == 40
    assert max(v for v in c["workers"]["running"] if v is not None) == 3
    assert max(v for v in c["queue"]["dead_letter"] if v is not None) == 1


def test_the_hook_publishes_queue_depth_and_worker_count_and_the_charts_read_them_back(asg, settings):
    settings.SQS_QUEUE_NAME = "charts-test-queue"  # the metrics' dimension: apart from other tests' ticks
    name, autoscaling = asg
    cloudwatch = client("cloudwatch", endpoint_url=None, region="us-east-1")
    reader = lambda: {"work": {"visible": 17, "in_flight": 3}, "dead_letter": {"visible": 4}}  # noqa: E731
    Autoscaler(AutoScalingGroupProvider(name, autoscaling), cloudwatch=cloudwatch, read_queue=reader).tick()
    published = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="imageshare")["Metrics"]}
    assert set(SERIES_METRICS) <= published
    c = chart_data(cloudwatch=cloudwatch)
    assert c["pool_source"] == "cloudwatch"
    assert 17 in c["queue"]["visible"] and 4 in c["queue"]["dead_letter"] and 3 in c["queue"]["in_flight"]


def test_an_unreachable_cloudwatch_falls_back_to_the_decision_log(aws):
    class Broken:
        def get_metric_data(self, **kwargs):
            raise ConnectionError("no route to CloudWatch")

    _decision(5, visible=9, running=1)
    c = chart_data(cloudwatch=Broken())
    assert c["pool_source"] == "decision log" and 9 in c["queue"]["visible"]


def test_metrics_json_is_for_staff_and_carries_the_charts(client, staff, owner, aws, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    assert client.get("/ops/metrics.json").status_code in (401, 403)
    client.force_login(staff)
    data = client.get("/ops/metrics.json").json()
    assert set(data) >= {"mode", "pool", "workers", "queues", "images", "charts"}
    assert len(data["charts"]["workers"]["running"]) == WINDOW_MINUTES
    assert data["mode"]["manual"] is False and data["pool"]["running"] == 0


def _tick(action, previous, desired, reason="r"):
    return ScalingDecision(action=action, previous=previous, desired=desired, reason=reason, created_at=timezone.now())


def test_repeated_holds_collapse_into_one_line_with_a_count_and_changes_stay_apart():
    newest_first = [
        _tick("hold", 3, 3, "hold: newest"),
        _tick("hold", 3, 3),
        _tick("out", 1, 3, "out: a burst"),
        _tick("out", 1, 1, "out: again"),
        *[_tick("hold", 1, 1) for _ in range(5)],
        _tick("hold", 1, 1, "hold (manual): an operator holds the pool at 1"),
        _tick("skip", None, None, "skipped: SQS down"),
    ]
    lines = collapse(newest_first)
    assert [(ln.label, ln.count) for ln in lines] == [
        ("hold", 2),
        ("out", 1),
        ("out", 1),
        ("hold", 5),
        ("hold (manual)", 1),
        ("skip", 1),
    ]
    assert lines[0].reason == "hold: newest" and lines[1].reason == "out: a burst" and lines[1].change


def test_the_page_shows_collapsed_holds_and_the_links(client, staff, aws, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.SITE_URL = "https://images.example.org/"
    settings.FLOWER_URL = "https://images.example.org:5555/"
    for _ in range(4):
        _decision(1, action="hold", previous=1, desired=1)
    client.force_login(staff)
    page = client.get("/ops/").content.decode()
    assert "×4" in page
    assert 'href="https://images.example.org/"' in page and 'href="https://images.example.org:5555/"' in page
    assert "console.js" in page and "<script>" not in page and "style=" not in page
