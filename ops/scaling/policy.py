"""Scaling policies: pure functions from what is observed to how many workers we want.

No I/O here: the hook (``manage.py duties``) and the simulator
(``python -m ops.scaling.simulate``) feed the same code, so what the simulator
proves is what runs.

Policies:
- ``backlog`` (default): backlog-per-worker target tracking, as AWS recommends
  for SQS-driven fleets. A worker finishes ``concurrency x L / t`` tasks
  within the acceptable latency L when a task takes t seconds; that is the
  target backlog per worker, and the waiting messages need
  ``ceil(visible / target)`` workers. The workers busy with the in-flight
  messages are a floor: desired = max(ceil(visible / target),
  ceil(in_flight / concurrency)). Without that floor a steady load is not
  steady: with the queue empty the plain formula asks for the minimum, the
  pool shrinks below what the load needs, the queue grows back, and the pool
  swings. (Adding the two terms instead reacts sooner but overshoots on
  every rise: see docs/scaling.md for both in the simulator.)
- ``cpu``: average CPU thresholds with grow/shrink ratios.
- ``step``: a naive baseline for comparison only (add one while messages
  outnumber workers, remove one when the queue is empty).

Stability rules shared by all (what stops oscillation at a steady load):
1. Out fast: if more is needed than running + starting workers (warming
   workers count as capacity, so a boot in progress is not piled on), scale
   out at once.
2. In slowly: only after ``scale_in_stable_seconds`` of every tick wanting
   fewer, and never sooner than ``scale_in_cooldown`` after the last action;
   then only down to the *largest* number wanted during that window.
3. Bounds: never outside [min, max]; with min 0 the first message wakes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

POLICIES = ("backlog", "cpu", "step")


@dataclass(frozen=True)
class Settings:
    policy: str = "backlog"
    min_workers: int = 1
    max_workers: int = 8
    worker_concurrency: int = 2
    target_latency_seconds: float = 30.0  # acceptable time in the queue
    default_task_seconds: float = 1.0  # until a processing time is measured
    scale_in_stable_seconds: float = 60.0
    scale_in_cooldown: float = 60.0
    # Scale in only when the load would still fit with this many workers to
    # spare: without it a load that needs exactly n workers flaps n <-> n+1.
    scale_in_headroom: float = 0.25
    cpu_high: float = 0.70
    cpu_low: float = 0.20
    grow_ratio: float = 2.0
    shrink_ratio: float = 0.5
    interval_seconds: float = 10.0  # between two ticks of the hook

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        if not (0 <= self.min_workers <= self.max_workers) or self.max_workers < 1:
            raise ValueError("bounds must satisfy 0 <= min <= max and max >= 1")
        if self.worker_concurrency < 1 or self.target_latency_seconds <= 0:
            raise ValueError("concurrency and target latency must be positive")
        if not (0 <= self.cpu_low < self.cpu_high <= 1) or self.grow_ratio <= 1 or not (0 < self.shrink_ratio < 1):
            raise ValueError("cpu thresholds need low < high within 0..1, grow > 1, 0 < shrink < 1")
        if self.interval_seconds < 1:
            raise ValueError("interval_seconds must be at least 1")


@dataclass(frozen=True)
class Observation:
    now: float  # seconds, any monotonic origin
    visible: int  # messages waiting in the queue
    in_flight: int  # messages received but not yet deleted
    running: int  # workers ready and consuming
    starting: int  # workers booting (count as capacity)
    avg_task_seconds: float | None = None  # recent measured processing time
    cpu: float | None = None  # average CPU use per running worker, 0..1


@dataclass
class History:
    """What the policy remembers between ticks (rebuilt from the log after a restart)."""

    last_action_at: float | None = None
    last_direction: int = 0  # +1 out, -1 in
    # (time, wanted) for each tick that wanted fewer workers than we had,
    # since the last tick that did not.
    wanting_fewer: list[tuple[float, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str
    wanted: int  # what the policy asked for before the stability rules

    @property
    def summary(self) -> str:
        return f"desired={self.desired} ({self.reason})"


def _raw_want(s: Settings, o: Observation, capacity: int) -> tuple[int | None, int | None, str]:
    """(workers wanted to scale out to, workers the load fits in when scaling in, why)."""
    backlog = o.visible + o.in_flight
    if s.policy == "backlog":
        task_s = o.avg_task_seconds or s.default_task_seconds
        per_worker = max(1.0, s.worker_concurrency * s.target_latency_seconds / task_s)
        load = max(o.in_flight / s.worker_concurrency, o.visible / per_worker)
        want = math.ceil(load)
        why = (
            f"max({o.in_flight} in flight / {s.worker_concurrency}, {o.visible} visible / {per_worker:.1f} per worker "
            f"(task {task_s:.2f}s)) = {load:.2f}"
        )
        return want, math.ceil(load + s.scale_in_headroom), why
    if s.policy == "cpu":
        if o.cpu is None:
            return None, None, "no CPU reading"
        if capacity == 0:
            want = 1 if backlog else 0
            return want, want, f"no workers, backlog {backlog}"
        if o.cpu > s.cpu_high:
            if o.starting:  # CPU of a pool still warming up says nothing new
                return capacity, capacity, f"cpu {o.cpu:.0%} > {s.cpu_high:.0%}, {o.starting} warming up"
            want = math.ceil(capacity * s.grow_ratio)
            return want, want, f"cpu {o.cpu:.0%} > {s.cpu_high:.0%}: x{s.grow_ratio} -> {want}"
        if o.cpu < s.cpu_low:
            want = math.floor(capacity * s.shrink_ratio)
            return want, want, f"cpu {o.cpu:.0%} < {s.cpu_low:.0%}: x{s.shrink_ratio} -> {want}"
        return capacity, capacity, f"cpu {o.cpu:.0%} within {s.cpu_low:.0%}..{s.cpu_high:.0%}"
    # step baseline
    if o.visible > capacity:
        return capacity + 1, capacity + 1, f"{o.visible} visible > {capacity} workers: +1"
    if backlog == 0:
        return capacity - 1, capacity - 1, "queue empty: -1"
    return capacity, capacity, "hold"


def _bound(s: Settings, want: int, backlog: int) -> int:
    bounded = min(max(want, s.min_workers), s.max_workers)
    if bounded == 0 and backlog > 0:
        bounded = 1  # min 0: wake on the first message
    return bounded


def decide(s: Settings, o: Observation, h: History) -> Decision:
    """The desired number of workers for this tick; updates ``h`` in place."""
    capacity = o.running + o.starting
    want, fits_in, why = _raw_want(s, o, capacity)
    if want is None or fits_in is None:  # the two are None together
        return Decision(capacity, f"hold: {why}", capacity)
    backlog = o.visible + o.in_flight
    bounded = _bound(s, want, backlog)
    why = f"{why}; bounds {s.min_workers}..{s.max_workers}" if bounded != want else why

    if bounded > capacity:
        h.wanting_fewer.clear()
        _acted(h, o.now, +1)
        return Decision(bounded, f"out: {why}", want)
    if capacity > s.max_workers:  # bounds were lowered: obey at once
        _acted(h, o.now, -1)
        return Decision(s.max_workers, f"in: above max {s.max_workers}", want)
    bounded = _bound(s, fits_in, backlog)
    if bounded >= capacity:
        h.wanting_fewer.clear()
        return Decision(capacity, f"hold: {why}", want)

    # Wants fewer: only after a stable window, after the cool-down, and only
    # down to the largest number wanted during the window.
    if s.policy == "step":  # the naive baseline removes one at once
        _acted(h, o.now, -1)
        return Decision(bounded, f"in: {why}", want)
    h.wanting_fewer.append((o.now, bounded))
    since = h.wanting_fewer[0][0]
    if o.now - since < s.scale_in_stable_seconds:
        return Decision(capacity, f"hold: {why}; wants fewer for {o.now - since:.0f}s", want)
    if h.last_action_at is not None and o.now - h.last_action_at < s.scale_in_cooldown:
        return Decision(capacity, f"hold: {why}; cool-down", want)
    target = max(w for _, w in h.wanting_fewer)
    h.wanting_fewer.clear()
    _acted(h, o.now, -1)
    return Decision(target, f"in: {why}; fewer wanted for {o.now - since:.0f}s", want)


def _acted(h: History, now: float, direction: int) -> None:
    h.last_action_at = now
    h.last_direction = direction
