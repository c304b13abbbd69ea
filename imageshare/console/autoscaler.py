"""The scaling hook: observe, decide (pure policy), act, record.

One ``tick``:
1. Read the policy settings from the database (changes apply on the next tick).
2. Observe: queue depth from SQS, the pool from the provider, the recent
   average processing time from the database. If any read fails the tick is
   skipped and recorded as such: no scaling on garbage.
3. Decide with ``ops.scaling.policy.decide``.
4. Act through the provider when enabled and the pool should change.
   In manual mode (an operator set the size on the console) the policy is
   not asked: the hook holds the pool at the operator's number, through the
   same provider, and records "hold (manual)" while it is there.
5. Publish backlog per worker to CloudWatch, so a native target-tracking
   policy can be attached to the group instead, with the queue depth and
   the worker count (the console's charts read them back), and record the
   decision.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg
from django.utils import timezone

from imageshare.images.models import Image
from ops.scaling.policy import Decision, History, Observation, decide

from .models import ScalingDecision, ScalingPolicy
from .queues import queue_depth

log = logging.getLogger(__name__)

METRIC_NAMESPACE = "imageshare"
METRIC_NAME = "BacklogPerWorker"
# Also published each tick, for the console's charts (imageshare/console/series.py).
SERIES_METRICS = ("QueueVisible", "QueueInFlight", "QueueDeadLetter", "WorkersRunning", "WorkersStarting")


def recent_task_seconds(window_minutes: int = 10) -> float | None:
    since = timezone.now() - timedelta(minutes=window_minutes)
    avg = Image.objects.filter(ready_at__gte=since, processing_ms__isnull=False).aggregate(v=Avg("processing_ms"))["v"]
    return avg / 1000 if avg else None


def history_from_log() -> History:
    """Rebuild what the policy remembers from the decision log (after a restart)."""
    h = History()
    last = ScalingDecision.objects.filter(action__in=["out", "in"]).first()
    if last:
        h.last_action_at = last.at
        h.last_direction = 1 if last.action == "out" else -1
    return h


class Autoscaler:
    def __init__(self, provider, cloudwatch=None, read_queue=queue_depth, clock=time.time):
        self.provider = provider
        self.cloudwatch = cloudwatch
        self.read_queue = read_queue
        self.clock = clock
        self.history = history_from_log()

    def _record(self, **fields) -> ScalingDecision:
        d = ScalingDecision.objects.create(provider=self.provider.name, at=self.clock(), **fields)
        # Every decision, holds included: the issue asks for each to be logged,
        # and this line is the hook's only per-tick output.
        log.info("scaling %s: %s -> %s | %s", d.action, d.previous, d.desired, d.reason)
        return d

    def tick(self) -> ScalingDecision:
        policy = ScalingPolicy.current()
        try:
            s = policy.to_settings()
            queues = self.read_queue()
            # Both queues the workers consume: new uploads and extra sizes.
            depth = {k: queues["work"][k] + queues.get("extras", {}).get(k, 0) for k in ("visible", "in_flight")}
            dead_letter = queues.get("dead_letter", {}).get("visible")
            pool = self.provider.state()
            task_s = recent_task_seconds()
        except Exception as exc:  # any broken read: skip, never act on it
            log.warning("scaling tick skipped: %s", exc)
            return self._record(action="skip", reason=f"skipped: could not read metrics ({exc})"[:1000])
        obs = Observation(
            now=self.clock(),
            visible=depth["visible"],
            in_flight=depth["in_flight"],
            running=pool.running,
            starting=pool.starting,
            avg_task_seconds=task_s,
            cpu=pool.cpu,
        )
        # Manual: the operator's number; the policy is not asked.
        wanted = policy.manual_desired or 0
        decision = Decision(wanted, "manual", wanted) if policy.manual else decide(s, obs, self.history)
        desired = pool.clamp(decision.desired)
        reason = decision.reason
        if desired != decision.desired:
            reason = f"{reason}; the provider's bounds are {pool.bounds[0]}..{pool.bounds[1]}"
        fields = dict(
            visible=obs.visible,
            in_flight=obs.in_flight,
            running=obs.running,
            starting=obs.starting,
            avg_task_seconds=task_s,
            cpu=pool.cpu,
            previous=pool.capacity,
            desired=desired,
            dead_letter=dead_letter,
        )
        self._publish(obs, pool.capacity, dead_letter)
        if policy.manual:
            return self._manual(pool, fields, bounded=reason.removeprefix("manual"))
        if desired == pool.capacity:
            return self._record(action="hold", reason=reason, **fields)
        if not policy.enabled:
            return self._record(action="off", reason=f"disabled; would {reason}", **fields)
        self.provider.set_desired(desired)
        action = "out" if desired > pool.capacity else "in"
        return self._record(action=action, reason=reason, **fields)

    def _manual(self, pool, fields: dict, bounded: str) -> ScalingDecision:
        """Hold the pool at the operator's number; the policy does not act until the console hands it back."""
        want = fields["desired"]
        self.history.wanting_fewer.clear()  # back in automatic, a scale-in waits a full stable window
        if want == pool.capacity:
            reason = f"hold (manual): an operator holds the pool at {want}; the policy does not act{bounded}"
            return self._record(action="hold", reason=reason, **fields)
        self.provider.set_desired(want)
        self.history.last_action_at = self.clock()  # the policy's cool-down counts from the operator's change
        action = "out" if want > pool.capacity else "in"
        return self._record(action=action, reason=f"manual: an operator asked for {want} worker(s){bounded}", **fields)

    def _publish(self, obs: Observation, capacity: int, dead_letter: int | None = None) -> None:
        if self.cloudwatch is None:
            return
        values = {
            METRIC_NAME: obs.visible / max(capacity, 1),
            "QueueVisible": obs.visible,
            "QueueInFlight": obs.in_flight,
            "WorkersRunning": obs.running,
            "WorkersStarting": obs.starting,
        }
        if dead_letter is not None:
            values["QueueDeadLetter"] = dead_letter
        dimensions = [{"Name": "QueueName", "Value": settings.SQS_QUEUE_NAME}]
        try:
            self.cloudwatch.put_metric_data(
                Namespace=METRIC_NAMESPACE,
                MetricData=[
                    {"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": "Count"}
                    for name, value in values.items()
                ],
            )
        except Exception as exc:  # a metric we could not publish must not stop scaling
            log.warning("could not publish %s: %s", METRIC_NAME, exc)
