"""Replay a load trace against the real policy code, with a simulated clock and workers.

    python -m ops.scaling.simulate                       # every shipped trace, three policies
    python -m ops.scaling.simulate --trace burst_1000 --boot 40 --task 2.0 --concurrency 2

A trace is a CSV ``second,uploads``: uploads arriving in that second. The
simulator advances one second at a time: uploads join a FIFO queue; each
ready worker runs up to ``concurrency`` tasks of ``task`` seconds; a new
worker takes ``boot`` seconds before it consumes; a worker told to go
finishes the tasks in hand first (warm shutdown). Every ``interval`` seconds
the hook observes the queue and the pool and the policy decides.

Printed per run: time to drain each burst, worker-minutes, scaling actions,
direction reversals, p50/p99 queue wait, and the peak pool.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from .policy import Decision, History, Observation, Settings, decide

TRACES = Path(__file__).parent / "traces"


@dataclass
class Worker:
    ready_at: float
    busy_until: list[float] = field(default_factory=list)  # one entry per running task
    leaving: bool = False


@dataclass
class Result:
    policy: str
    trace: str
    drain_seconds: list[float]
    worker_minutes: float
    actions: int
    reversals: int
    p50_wait: float
    p99_wait: float
    max_wait: float
    peak_workers: int
    max_seen: int
    min_seen: int
    done: int
    total: int
    decisions: list[tuple[float, Decision]]
    pool: list[int]  # pool size (running + starting) per second


def load_trace(path: Path) -> list[int]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or set(rows[0]) != {"second", "uploads"}:
        raise ValueError(f"{path}: header must be 'second,uploads'")
    length = max(int(r["second"]) for r in rows) + 1
    arrivals = [0] * length
    for r in rows:
        arrivals[int(r["second"])] += int(r["uploads"])
    return arrivals


def bursts(arrivals: list[int], window: int = 60) -> list[tuple[int, int]]:
    """(start, end) seconds of each period whose 60 s arrival rate is over 1.5x the trace's average."""
    if not arrivals:
        return []
    average = sum(arrivals) / len(arrivals)
    periods, start, acc = [], None, 0
    for t, n in enumerate(arrivals):
        acc += n - (arrivals[t - window] if t >= window else 0)
        high = acc / min(t + 1, window) > 1.5 * average
        if high and start is None:
            start = max(0, t - window + 1) if t >= window else 0
            while arrivals[start] == 0:
                start += 1
        elif not high and start is not None:
            periods.append((start, t))
            start = None
    if start is not None:
        periods.append((start, len(arrivals)))
    merged: list[tuple[int, int]] = []
    for a, b in periods:
        if merged and a - merged[-1][1] < window:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def simulate(
    arrivals: list[int],
    settings: Settings,
    *,
    boot: float = 30.0,
    task: float = 1.0,
    interval: float = 10.0,
    initial: int | None = None,
    tail: int = 1800,
    trace_name: str = "",
) -> Result:
    """Run until the trace is over and the queue is empty (or ``tail`` seconds after)."""
    settings = replace(settings, worker_concurrency=settings.worker_concurrency)
    concurrency = settings.worker_concurrency
    queue: deque[float] = deque()
    workers: list[Worker] = [Worker(ready_at=0.0) for _ in range(initial or settings.min_workers)]
    history = History()
    waits: list[float] = []
    decisions: list[tuple[float, Decision]] = []
    pool_trace: list[int] = []
    actions = reversals = 0
    last_dir = 0
    worker_seconds = 0.0
    total = sum(arrivals)
    recent_task = task
    t = 0
    horizon = len(arrivals) + tail
    burst_periods = bursts(arrivals)
    drained_at: dict[int, float] = {}
    while t < horizon:
        now = float(t)
        if t < len(arrivals):
            queue.extend([now] * arrivals[t])
        # Workers finish tasks and take new ones.
        for w in workers:
            w.busy_until = [b for b in w.busy_until if b > now]
            if w.leaving or now < w.ready_at:
                continue
            while len(w.busy_until) < concurrency and queue:
                waits.append(now - queue.popleft())
                w.busy_until.append(now + task)
        workers = [w for w in workers if not (w.leaving and not w.busy_until)]
        worker_seconds += len(workers)
        pool_trace.append(sum(1 for w in workers if not w.leaving))
        for i, (start, _end) in enumerate(burst_periods):
            if i not in drained_at and t >= start and not queue and t >= burst_periods[i][1]:
                drained_at[i] = now - start
        # The hook.
        if t % int(interval) == 0:
            active = [w for w in workers if not w.leaving]
            running = sum(1 for w in active if now >= w.ready_at)
            in_flight = sum(len(w.busy_until) for w in workers)
            cpu = (in_flight / (running * concurrency)) if running else None
            obs = Observation(
                now=now,
                visible=len(queue),
                in_flight=in_flight,
                running=running,
                starting=len(active) - running,
                avg_task_seconds=recent_task,
                cpu=cpu,
            )
            d = decide(settings, obs, history)
            decisions.append((now, d))
            capacity = len(active)
            if d.desired != capacity:
                direction = 1 if d.desired > capacity else -1
                actions += 1
                if last_dir and direction != last_dir:
                    reversals += 1
                last_dir = direction
                if direction > 0:
                    workers.extend(Worker(ready_at=now + boot) for _ in range(d.desired - capacity))
                else:
                    # Remove idle and still-booting workers first, then the least busy.
                    for w in sorted(active, key=lambda w: (now >= w.ready_at, len(w.busy_until)))[
                        : capacity - d.desired
                    ]:
                        w.leaving = True
        t += 1
        if t >= len(arrivals) and not queue and all(not w.busy_until for w in workers):
            # Keep ticking a while so scale-in after the load is part of the record.
            if t >= len(arrivals) + settings.scale_in_stable_seconds + settings.scale_in_cooldown + 2 * interval:
                if len([w for w in workers if not w.leaving]) <= max(settings.min_workers, 0):
                    break
    waits.sort()

    def pct(q: float) -> float:
        return waits[min(len(waits) - 1, int(q * (len(waits) - 1)))] if waits else 0.0

    return Result(
        policy=settings.policy,
        trace=trace_name,
        drain_seconds=[drained_at.get(i, math.inf) for i in range(len(burst_periods))],
        worker_minutes=worker_seconds / 60,
        actions=actions,
        reversals=reversals,
        p50_wait=pct(0.5),
        p99_wait=pct(0.99),
        max_wait=waits[-1] if waits else 0.0,
        peak_workers=max(pool_trace) if pool_trace else 0,
        max_seen=max(pool_trace) if pool_trace else 0,
        min_seen=min(pool_trace) if pool_trace else 0,
        done=len(waits),
        total=total,
        decisions=decisions,
        pool=pool_trace,
    )


def table(results: list[Result]) -> str:
    head = (
        "| trace | policy | drain per burst (s) | worker-min | actions | reversals "
        "| wait p50 (s) | wait p99 (s) | peak |"
    )
    lines = [head, "|" + "---|" * 9]
    for r in results:
        drains = ", ".join("∞" if math.isinf(d) else f"{d:.0f}" for d in r.drain_seconds) or "-"
        lines.append(
            f"| {r.trace} | {r.policy} | {drains} | {r.worker_minutes:.1f} | {r.actions} | {r.reversals} "
            f"| {r.p50_wait:.0f} | {r.p99_wait:.0f} | {r.peak_workers} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", action="append", help="trace name in ops/scaling/traces or a CSV path")
    parser.add_argument("--policy", action="append", choices=["backlog", "cpu", "step"])
    parser.add_argument("--boot", type=float, default=40.0, help="seconds before a new worker consumes")
    parser.add_argument("--task", type=float, default=2.0, help="seconds per task")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between hook ticks")
    parser.add_argument("--min", type=int, default=1)
    parser.add_argument("--max", type=int, default=8)
    parser.add_argument("--latency", type=float, default=30.0, help="acceptable queueing latency (s)")
    args = parser.parse_args(argv)

    names = args.trace or sorted(p.stem for p in TRACES.glob("*.csv"))
    policies = args.policy or ["backlog", "step", "cpu"]
    results = []
    for name in names:
        path = Path(name) if name.endswith(".csv") else TRACES / f"{name}.csv"
        arrivals = load_trace(path)
        for policy in policies:
            settings = Settings(
                policy=policy,
                min_workers=args.min,
                max_workers=args.max,
                worker_concurrency=args.concurrency,
                target_latency_seconds=args.latency,
                default_task_seconds=args.task,
            )
            results.append(
                simulate(
                    arrivals, settings, boot=args.boot, task=args.task, interval=args.interval, trace_name=path.stem
                )
            )
    print(
        f"boot {args.boot:.0f}s, task {args.task}s, concurrency {args.concurrency}, hook every {args.interval:.0f}s, "
        f"bounds {args.min}..{args.max}, target latency {args.latency:.0f}s"
    )
    print(table(results))


if __name__ == "__main__":
    main()
