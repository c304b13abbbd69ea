"""Task throughput with monitoring events on and off: same machine, same run.

    .venv/bin/python -m bench.throughput --n 40 --rounds 2

For each round and each mode (events on Redis with Flower consuming them,
events on Redis with no Flower, events off) it starts a quiet
local stack, stops its worker, uploads N small photos (so the queue holds N
messages), starts the worker, and times how long the worker takes to make
every image ready (from the first image ready to the last, so start-up is
left out). Modes alternate so drift hits both. moto's SQS limits the
absolute rate (tens of messages per second); the comparison is the point.
"""

import argparse
import statistics
import time

from bench.common import local_stack
from tests.support.images import make_image


def one_run(events: bool, n: int, flower: bool = True) -> float:
    with local_stack(events=events, autoscale=False) as (stack, s):
        if events and not flower:  # events sent to Redis, but nobody consuming them
            stack.stop_process("flower")
            del stack.procs["flower"]
        # The worker is stopped while the queue fills, so the timing starts
        # with a full queue; a stopping worker gives back what its last long
        # poll brings (ops/worker/consumer.py), so nothing waits out a timeout.
        stack.stop_process("worker1")
        photo = make_image(1600, 1200)
        ids = []
        for _ in range(n):
            r = s.post(f"{stack.web_url}/api/v1/images", files={"image": ("p.jpg", photo)}, timeout=30)
            r.raise_for_status()
            ids.append(r.json()["id"])
        stack.restart_process("worker1")
        # Time from the first image ready to the last: the worker's
        # start-up is left out, only the steady work is measured.
        first = None
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            count = s.get(f"{stack.web_url}/api/v1/images?status=ready&limit=1", timeout=10).json()["count"]
            if count and first is None:
                first = (time.perf_counter(), count)
            if count == n:
                return (time.perf_counter() - first[0]) / max(1, n - first[1]) * n
            time.sleep(0.05)
        raise RuntimeError("not all images became ready in 600 s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    modes = {"events on + Flower": (True, True), "events on, no Flower": (True, False), "events off": (False, True)}
    results = {m: [] for m in modes}
    for r in range(args.rounds):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            secs = one_run(*modes[mode][:1], args.n, flower=modes[mode][1])
            results[mode].append(args.n / secs)
            print(f"round {r + 1}, {mode}: {args.n} tasks in {secs:.1f} s = {args.n / secs:.1f}/s")
    off = statistics.median(results["events off"])
    print()
    for mode, rates in results.items():
        rate = statistics.median(rates)
        print(f"median tasks/s, {mode}: {rate:.1f} ({rate / off:.2f} of events off)")
    print("(first ready to last ready, scaled to N; 1 worker, concurrency 2, moto SQS)")


if __name__ == "__main__":
    main()
