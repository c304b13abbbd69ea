"""A soak: the local stack under steady load for ten minutes, counting losses and watching memory.

    .venv/bin/python -m bench.soak [--minutes 10] [--share 0.7] [--folder ../shared/corpus]

1. Start a quiet local stack on free loopback ports with one fixed worker
   (a fixed pool, so the memory of its processes can be compared over time).
2. Measure its capacity: a burst of ``--probe`` uploads, drained; capacity =
   images ready per second, first created to last ready.
3. Upload at ``--share`` of that rate (paced, like ``bench.load``) for
   ``--minutes``, sampling the resident memory (RSS) of the web tier
   (gunicorn's processes) and of the worker (its main process and pool
   children) every 10 s.
4. Drain, then print accepted / ready / failed / lost, the responses by
   status (5xx counted apart), and each group's RSS slope in MB per minute
   (least squares over the samples after the first minute's warm-up).

Exit status 1 if anything was lost or any 5xx came back. The stack, the
traffic and the figures stay on loopback.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from bench import load as loadgen
from bench.common import PASSWORD, local_stack

SAMPLE_SECONDS = 10.0


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (gunicorn's workers, celery's pool children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MB): MB per minute."""
    if len(points) < 3:
        return float("nan")
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def photos(folder: Path | None) -> Path:
    """The folder to cycle: the given one, or a few generated photos (a fresh clone has no corpus)."""
    if folder and folder.is_dir():
        return folder
    out = Path(tempfile.mkdtemp(prefix="soak-photos-"))
    rng = random.Random(7)
    for i in range(6):
        w, h = rng.choice([(2400, 1600), (1600, 1200), (3000, 2000)])
        im = Image.effect_mandelbrot((w, h), (-2 + i * 0.1, -1.2, 1, 1.2), 60).convert("RGB")
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        (out / f"generated{i}.jpg").write_bytes(buf.getvalue())
    return out


def run_load(base: str, argv: list[str]) -> tuple[loadgen.Load, list[loadgen.Upload], dict]:
    args = loadgen.parse_args([f"{base}/api/v1/images", "admin", PASSWORD, *argv, "--auth", "token", "--no-plot"])
    load = loadgen.Load(args)
    load.start_clock()
    with concurrent.futures.ThreadPoolExecutor(args.connections, thread_name_prefix="upload") as pool:
        uploads = load.send_all(pool)
        send = max(u.started + u.latency for u in uploads) - min(u.started for u in uploads)
        drain = load.drain(pool, uploads)
    return load, uploads, loadgen.report(load, uploads, max(send, 1e-9), drain)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--share", type=float, default=0.7, help="of the measured capacity (default 0.7)")
    parser.add_argument("--probe", type=int, default=40, help="uploads in the capacity burst (default 40)")
    parser.add_argument("--folder", type=Path, default=Path("../shared/corpus"))
    args = parser.parse_args(argv)
    folder = photos(args.folder)
    with local_stack(autoscale=False, workers=1, events=False) as (stack, _):
        base = stack.web_url
        print(f"== capacity: a burst of {args.probe} from {folder}")
        _, probe, _ = run_load(base, ["1", str(folder), "--burst", str(args.probe)])
        ready = [u for u in probe if u.status == "ready"]
        span = max(u.ready_at for u in ready) - min(u.created_at for u in ready)
        capacity = len(ready) / span
        rate = round(capacity * args.share, 2)
        count = max(1, int(rate * args.minutes * 60))
        print(f"== capacity {capacity:.2f} images/s; soaking at {rate}/s ({args.share:.0%}) for {args.minutes:g} min")

        samples: dict[str, list[tuple[float, float]]] = {"web": [], "worker": []}
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                minute = (time.monotonic() - t0) / 60
                samples["web"].append((minute, rss_mb(tree(stack.procs["web"].pid))))
                samples["worker"].append((minute, rss_mb(tree(stack.procs["worker1"].pid))))
                stop.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, uploads, figures = run_load(
            base, [str(rate), str(folder), str(count), "--connections", "32", "--drain-timeout", "300"]
        )
        stop.set()
        sampler.join(timeout=15)
    server_errors = sum(1 for u in uploads if u.outcome.startswith("5"))
    print("== soak")
    print(f"lost {figures['lost']}, 5xx {server_errors}, accepted {figures['accepted']} of {figures['sent']}")
    for group, points in samples.items():
        warm = [p for p in points if p[0] >= 1.0] or points
        print(
            f"{group} RSS: {warm[0][1]:.0f} MB after warm-up -> {points[-1][1]:.0f} MB at the end; "
            f"slope {slope(warm):+.2f} MB/min over {len(warm)} samples"
        )
    return 1 if figures["lost"] or server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
