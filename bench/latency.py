"""Upload-to-ready latency on the local stack.

Starts a quiet local stack on free loopback ports, uploads each file N times
one after another through the JSON API, and prints the time from the POST to
the API reporting ``ready`` (polled every 20 ms), next to the engine's own
CPU time for the same file as the reference.

    .venv/bin/python -m bench.latency ../shared/corpus/u12_onestandsout_4032x3024_orient6.jpg --n 5
"""

import argparse
import statistics
import time
from pathlib import Path

from bench.common import local_stack
from thumbnails import engine


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()

    with local_stack() as (stack, s):
        for path in args.files:
            data = path.read_bytes()
            t = time.process_time()
            engine.render(data)
            engine_ms = (time.process_time() - t) * 1000
            times = []
            for _ in range(args.n):
                start = time.perf_counter()
                r = s.post(f"{stack.web_url}/api/v1/images", files={"image": (path.name, data)}, timeout=60)
                r.raise_for_status()
                accepted = time.perf_counter() - start
                image_id = r.json()["id"]
                deadline = start + 120
                while time.perf_counter() < deadline:
                    status = s.get(f"{stack.web_url}/api/v1/images/{image_id}", timeout=10).json()["status"]
                    if status != "pending":
                        break
                    time.sleep(0.02)
                assert status == "ready", status
                times.append((accepted, time.perf_counter() - start))
            ready = sorted(t for _, t in times)
            print(
                f"{path.name}: {len(data) / 1e6:.1f} MB; upload->202 median "
                f"{statistics.median(a for a, _ in times) * 1000:.0f} ms; upload->ready median "
                f"{statistics.median(ready) * 1000:.0f} ms, max {ready[-1] * 1000:.0f} ms (n={args.n}); "
                f"engine alone {engine_ms:.0f} ms CPU"
            )


if __name__ == "__main__":
    main()
