"""The console's charts: the last 30 minutes in 1-minute points.

- Worker count and queue depth: from CloudWatch, where the scaling hook
  publishes them every tick (``autoscaler.SERIES_METRICS``), read back with
  one ``GetMetricData`` call; when CloudWatch has nothing (not reachable, or
  nothing published yet) from the decision log instead (one
  ``ScalingDecision`` row per tick). Either way the highest reading of each
  minute: a burst shows even when it drained within the minute.
- Tasks done and uploads per minute, and upload-to-ready p50 and p99: from
  the images table (``created_at``, ``ready_at``).

A minute with no reading is ``None`` (a gap in the line), not 0.
"""

from __future__ import annotations

import functools
import logging
import math
from collections import defaultdict
from datetime import datetime, timedelta

from botocore.config import Config
from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from imageshare.images.models import Image
from ops.deploy.clients import client

from .autoscaler import METRIC_NAMESPACE
from .models import ScalingDecision

log = logging.getLogger(__name__)

WINDOW_MINUTES = 30
LATENCY_SAMPLE_LIMIT = 50_000  # images ready in the window that the percentiles look at, newest first
# Chart series -> (CloudWatch metric, decision-log column).
POOL_SERIES = {
    "running": ("WorkersRunning", "running"),
    "starting": ("WorkersStarting", "starting"),
    "visible": ("QueueVisible", "visible"),
    "in_flight": ("QueueInFlight", "in_flight"),
    "dead_letter": ("QueueDeadLetter", "dead_letter"),
}


def window(now: datetime | None = None) -> list[datetime]:
    """The starts of the last ``WINDOW_MINUTES`` minutes, oldest first; the last is the current minute."""
    now = now or timezone.now()
    last = now.replace(second=0, microsecond=0)
    return [last - timedelta(minutes=WINDOW_MINUTES - 1 - i) for i in range(WINDOW_MINUTES)]


def _index(minutes: list[datetime], at: datetime) -> int | None:
    i = int((at - minutes[0]).total_seconds() // 60)
    return i if 0 <= i < len(minutes) else None


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- worker count and queue depth -----------------------------------------------------
def pool_from_log(minutes: list[datetime]) -> dict[str, list[float | None]]:
    out: dict[str, list[float | None]] = {k: [None] * len(minutes) for k in POOL_SERIES}
    columns = [column for _, column in POOL_SERIES.values()]
    rows = ScalingDecision.objects.filter(created_at__gte=minutes[0]).values_list("created_at", *columns)
    for created_at, *values in rows.iterator():
        i = _index(minutes, created_at)
        if i is None:
            continue
        for key, value in zip(POOL_SERIES, values, strict=True):
            if value is not None:
                out[key][i] = value if out[key][i] is None else max(out[key][i], value)
    return out


@functools.cache
def _cloudwatch():
    # Short timeouts, one retry: the page falls back to the decision log rather than wait.
    fast = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return client("cloudwatch", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION, config=fast)


def pool_from_cloudwatch(minutes: list[datetime], cloudwatch=None) -> dict[str, list[float | None]] | None:
    """The same series from CloudWatch; None when it cannot be read or has no point in the window."""
    dimensions = [{"Name": "QueueName", "Value": settings.SQS_QUEUE_NAME}]
    queries = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {"Namespace": METRIC_NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                "Period": 60,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }
        for key, (metric, _) in POOL_SERIES.items()
    ]
    try:
        results = (cloudwatch or _cloudwatch()).get_metric_data(
            MetricDataQueries=queries, StartTime=minutes[0], EndTime=minutes[-1] + timedelta(minutes=1)
        )["MetricDataResults"]
    except Exception as exc:  # not reachable, no permission: the decision log still answers
        log.info("CloudWatch series unavailable, using the decision log: %s", exc)
        return None
    out: dict[str, list[float | None]] = {k: [None] * len(minutes) for k in POOL_SERIES}
    found = False
    for result in results:
        for at, value in zip(result["Timestamps"], result["Values"], strict=True):
            i = _index(minutes, at)
            if i is not None and result["Id"] in out:
                out[result["Id"]][i] = value
                found = True
    return out if found else None


# --- from the images table ----------------------------------------------------------
def _per_minute(minutes: list[datetime], field: str) -> list[int]:
    counts = [0] * len(minutes)
    rows = (
        Image.objects.filter(**{f"{field}__gte": minutes[0]})
        .annotate(minute=TruncMinute(field))
        .values("minute")
        .annotate(n=Count("id"))
        .values_list("minute", "n")
    )
    for minute, n in rows:
        i = _index(minutes, minute)
        if i is not None:
            counts[i] += n
    return counts


def latency(minutes: list[datetime]) -> dict[str, list[float | None]]:
    """Upload to ready, in seconds, of the images that became ready in each minute: p50 and p99."""
    by_minute: dict[int, list[float]] = defaultdict(list)
    rows = (
        Image.objects.filter(ready_at__gte=minutes[0])
        .order_by("-ready_at")
        .values_list("created_at", "ready_at")[:LATENCY_SAMPLE_LIMIT]
    )
    for created_at, ready_at in rows:
        i = _index(minutes, ready_at)
        if i is not None:
            by_minute[i].append(max(0.0, (ready_at - created_at).total_seconds()))
    p50: list[float | None] = [None] * len(minutes)
    p99: list[float | None] = [None] * len(minutes)
    for i, values in by_minute.items():
        values.sort()
        p50[i], p99[i] = percentile(values, 50), percentile(values, 99)
    return {"p50": p50, "p99": p99}


def chart_data(now: datetime | None = None, cloudwatch=None, use_cloudwatch: bool = True) -> dict:
    minutes = window(now)
    pool = pool_from_cloudwatch(minutes, cloudwatch) if use_cloudwatch else None
    source = "cloudwatch" if pool is not None else "decision log"
    if pool is None:
        pool = pool_from_log(minutes)
    return {
        "minutes": [m.isoformat() for m in minutes],
        "pool_source": source,
        "workers": {"running": pool["running"], "starting": pool["starting"]},
        "queue": {"visible": pool["visible"], "in_flight": pool["in_flight"], "dead_letter": pool["dead_letter"]},
        "tasks_per_minute": _per_minute(minutes, "ready_at"),
        "uploads_per_minute": _per_minute(minutes, "created_at"),
        "latency_seconds": latency(minutes),
    }
