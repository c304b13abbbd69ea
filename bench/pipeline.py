"""The worker pipeline against the engine alone: same photos, same specs, same number of processes, one run.

    make bench-pipeline                  # ../shared/corpus when present, else generated photos
    .venv/bin/python -m bench.pipeline --corpus DIR --n 40 --concurrency 2 --prefetch 1

1. Engine alone: P processes (multiprocessing, spawned and warmed up with
   one render each), every photo's bytes already in memory, the N jobs
   handed out one at a time; images/s from the first job handed out to the
   last result.
2. Pipeline: a quiet local stack (bench.common.local_stack: moto, gunicorn,
   one fixed worker, no scaling hook, no monitoring events unless
   ``--events``). The worker is stopped; the N photos are uploaded through
   the API (stored to S3, rows pending, one SQS message each); then a worker
   with a pool of P processes (``--concurrency``) and ``--prefetch`` as
   Celery's prefetch multiplier is started. Timed **from the worker ready**
   (its ready file: consuming) **to the last image ready** (the task's own
   wall-clock stamp in its ``stages`` log line), so the worker's start-up is
   left out and the first message's receive is in.
3. Engine alone once more (drift on a shared machine shows as the gap
   between the two); the reference is their mean.

Printed: both throughputs, the per-task stage breakdown (p50/p95 of what the
task logs in its ``stages {json}`` line: receive = message received by the
worker's main process to task start, get, decode, resize+encode, puts, DB),
the ack (DeleteMessage, which kombu makes synchronously in the worker's main
process after each task; the task cannot time it, so it is sampled here on
the same moto after the drain), the CPU the stack's own processes used
during the drain (moto above all: it serves S3 and SQS on the same cores),
and last, ``pipeline/engine throughput ratio: X.XX``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("receive", "db_start", "get", "decode", "resize_encode", "puts", "db", "task", "engine_cpu", "task_cpu")
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


# --- parsing and summaries (pure: tests/bench/test_pipeline.py) -------------------------
def parse_stages(lines) -> list[dict]:
    """The JSON of every ``stages {...}`` line of the task (one per finished image), in order."""
    found = []
    for line in lines:
        at = line.find("stages {")
        if at < 0:
            continue
        try:
            found.append(json.loads(line[at + len("stages ") :]))
        except ValueError:
            continue  # a line cut short (the log being written): not a finished image's record
    return found


def pct(values, q: float) -> float:
    """The q-quantile (0..1), nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarize(records: list[dict], stages=STAGES) -> dict[str, tuple[float, float, int]]:
    """stage -> (p50, p95, count) in ms, over the records that have the stage."""
    out = {}
    for stage in stages:
        values = [r[stage] for r in records if isinstance(r.get(stage), (int, float))]
        if values:
            out[stage] = (statistics.median(values), pct(values, 0.95), len(values))
    return out


def cpu_seconds(stat: str, ticks: int = 100) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of the whole line


def drain_rate(n: int, worker_ready: float, done_at: list[float]) -> float:
    """Images per second from the worker ready to the last image ready."""
    return n / (max(done_at) - worker_ready)


def ratio_line(pipeline_rate: float, engine_rate: float) -> str:
    return f"pipeline/engine throughput ratio: {pipeline_rate / engine_rate:.2f}"


def stage_table(summary: dict[str, tuple[float, float, int]], ack: tuple[float, float, int] | None) -> list[str]:
    labels = {
        "receive": "receive (message received -> task start)",
        "db_start": "DB at start (row, attempts + 1)",
        "get": "get original (GetObject)",
        "decode": "decode + normalise (engine)",
        "resize_encode": "resize + encode (engine)",
        "puts": "puts (PutObject, concurrent)",
        "db": "DB at end (one transaction)",
        "task": "task wall, start to end",
        "engine_cpu": "engine CPU (in the task)",
        "task_cpu": "task CPU, start to end",
    }
    rows = [f"  {'stage':<44}{'p50 ms':>9}{'p95 ms':>9}{'n':>5}"]
    for stage, (p50, p95, count) in summary.items():
        rows.append(f"  {labels.get(stage, stage):<44}{p50:>9.1f}{p95:>9.1f}{count:>5}")
    if ack:
        rows.append(f"  {'ack (DeleteMessage, sampled on this moto)':<44}{ack[0]:>9.1f}{ack[1]:>9.1f}{ack[2]:>5}")
    return rows


# --- the engine alone --------------------------------------------------------------------
_PHOTOS: dict[str, bytes] = {}


def _load(paths: list[str]) -> None:
    for p in paths:
        _PHOTOS[p] = Path(p).read_bytes()


def _render(path: str) -> tuple[float, float]:
    from imageshare import settings as s
    from thumbnails import engine

    t, c = time.perf_counter(), time.process_time()
    engine.render(
        _PHOTOS[path],
        engine.STANDARD_SPECS,
        max_pixels=s.MAX_IMAGE_PIXELS,
        jpeg_quality=s.JPEG_QUALITY,
        extra_formats=s.EXTRA_FORMATS,
    )
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def engine_alone(jobs: list[Path], procs: int) -> tuple[float, list[tuple[float, float]]]:
    """Images/s of P engine processes on the jobs (bytes in memory), and each render's (wall, CPU) ms."""
    unique = sorted({str(p) for p in jobs})
    ctx = mp.get_context("spawn")
    with ctx.Pool(procs, initializer=_load, initargs=(unique,)) as pool:
        pool.map(_render, unique[:procs], chunksize=1)  # warm-up: imports, first-call costs
        start = time.perf_counter()
        walls = list(pool.imap_unordered(_render, [str(p) for p in jobs], chunksize=1))
        took = time.perf_counter() - start
    return len(jobs) / took, walls


# --- the pipeline ------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    """pid and its descendants (the worker's pool processes)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [c for child in (task / "children").read_text().split() for c in _tree(int(child))]
        except OSError:
            pass
    return out


def _cpu(pids) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), ticks)
        except (OSError, IndexError, ValueError):
            pass
    return total


def sample_ack(endpoint: str, region: str, k: int = 20) -> tuple[float, float, int]:
    """p50/p95 ms of DeleteMessage on a scratch queue of the same moto (what kombu's ack costs)."""
    from ops.deploy.clients import client

    sqs = client("sqs", endpoint_url=endpoint, region=region)
    url = sqs.create_queue(QueueName="bench-pipeline-ack")["QueueUrl"]
    for i in range(k):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    times = []
    while len(times) < k:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            break
        for m in got:
            t = time.perf_counter()
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            times.append((time.perf_counter() - t) * 1000)
    sqs.delete_queue(QueueUrl=url)
    return statistics.median(times), pct(times, 0.95), len(times)


def pipeline(jobs: list[Path], concurrency: int, prefetch: int, events: bool) -> dict:
    from bench.common import local_stack

    env = {"WORKER_PREFETCH_MULTIPLIER": str(prefetch), "WORKER_CONCURRENCY": str(concurrency)}
    os.environ.update(env)  # the stack passes its environment to its children
    with local_stack(autoscale=False, events=events, concurrency=concurrency) as (stack, s):
        stack.stop_process("worker1")
        # Uploads also queue an image analysis (faces: thumbnails/analysis.py) for a worker of its
        # own; it is not the resize pipeline, and on two cores it would take the CPU measured here.
        for name in [n for n in stack.procs if n.startswith("worker") and n != "worker1"]:
            stack.stop_process(name)
        ids = []
        for p in jobs:
            r = s.post(
                f"{stack.web_url}/api/v1/images",
                files={"image": (p.name, p.read_bytes(), MIME.get(p.suffix.lower(), "application/octet-stream"))},
                timeout=60,
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        moto = stack.procs["moto"].pid
        others = {name: stack.procs[name].pid for name in ("web",) if name in stack.procs}
        before = {"moto": _cpu([moto]), **{n: _cpu(_tree(pid)) for n, pid in others.items()}}
        spawned = time.time()
        stack.add_worker(1)
        ready = time.time()
        worker = stack.procs["worker1"].pid
        w_before = _cpu([worker])
        pool = _tree(worker)[1:]
        p_before = _cpu(pool)
        deadline = time.monotonic() + 600
        log = stack.log_path("worker1")
        while time.monotonic() < deadline:
            records = parse_stages(log.read_text(errors="replace").splitlines())
            if len({r["image"] for r in records} & set(ids)) >= len(ids):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("not every image became ready in 600 s")
        end = time.time()
        cpu = {
            "moto": _cpu([moto]) - before["moto"],
            "worker main process": _cpu([worker]) - w_before,
            "worker pool processes": _cpu(pool) - p_before,
            **{n: _cpu(_tree(pid)) - before[n] for n, pid in others.items()},
        }
        statuses = s.get(f"{stack.web_url}/api/v1/images?status=ready&limit=1", timeout=10).json()["count"]
        ack = sample_ack(stack.env["AWS_ENDPOINT_URL"], stack.env["AWS_REGION"])
        mine = [r for r in records if r["image"] in set(ids)]
    return {
        "records": mine,
        "spawned": spawned,
        "ready": ready,
        "end": end,
        "cpu": cpu,
        "ack": ack,
        "ready_count": statuses,
    }


# --- the corpus --------------------------------------------------------------------------
def photos_in(folder: Path | None, tmp: Path) -> list[Path]:
    if folder:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTENSIONS)
    from bench.engine import generated_corpus

    return generated_corpus(tmp)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of photos (default: generated ones)")
    parser.add_argument("--n", type=int, default=60, help="images (the corpus repeated as needed; default 60)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker pool processes (default: WORKER_CONCURRENCY's default)"
    )
    parser.add_argument(
        "--engine-procs", type=int, default=None, help="engine-alone processes (default: the machine's cores)"
    )
    parser.add_argument("--prefetch", type=int, default=None, help="Celery prefetch multiplier (default: settings)")
    parser.add_argument("--events", action="store_true", help="monitoring events on (Redis + Flower)")
    args = parser.parse_args(argv)

    from imageshare import settings as s

    prefetch = args.prefetch or s.WORKER_PREFETCH_MULTIPLIER
    with tempfile.TemporaryDirectory() as tmp:
        photos = photos_in(args.corpus, Path(tmp))
        if not photos:
            print(f"no photos in {args.corpus}", file=sys.stderr)
            return 2
        jobs = [photos[i % len(photos)] for i in range(args.n)]
        concurrency = args.concurrency or s.SCALING_DEFAULTS["worker_concurrency"]
        P = args.engine_procs or os.cpu_count() or 1
        before, walls = engine_alone(jobs, P)
        run = pipeline(jobs, concurrency, prefetch, args.events)
        after, walls2 = engine_alone(jobs, P)

    records = run["records"]
    engine_rate = (before + after) / 2
    drain = max(r["done_at"] for r in records) - run["ready"]
    pipe_rate = drain_rate(len(records), run["ready"], [r["done_at"] for r in records])
    first_last = sorted(r["done_at"] for r in records)
    fl_rate = (len(records) - 1) / (first_last[-1] - first_last[0]) if len(records) > 1 else float("nan")
    cores = os.cpu_count() or 1

    print(f"\ncorpus: {args.corpus or 'generated'} ({len(photos)} photos), N={len(jobs)} images, standard specs")
    print(
        f"machine: {cores} cores; worker: 1 worker, pool of {concurrency} processes, prefetch multiplier {prefetch}; "
        f"events {'on' if args.events else 'off'}"
    )
    print(
        f"engine alone ({P} processes, bytes in memory): {before:.2f} img/s before, {after:.2f} after: "
        f"{engine_rate:.2f} img/s"
    )
    print(
        f"pipeline: {len(records)} images in {drain:.1f} s from worker ready = {pipe_rate:.2f} img/s "
        f"(first ready to last: {fl_rate:.2f} img/s; worker start-up {run['ready'] - run['spawned']:.1f} s, "
        f"left out); ready per the API: {run['ready_count']}"
    )
    print("per task stages (ms):")
    for row in stage_table(summarize(records), run["ack"]):
        print(row)
    task_ms = statistics.mean(r["task"] for r in records)
    engine_in_task = statistics.mean(r["decode"] + r["resize_encode"] for r in records)
    alone_ms = statistics.mean(w for w, _ in walls + walls2)
    alone_cpu = statistics.mean(c for _, c in walls + walls2)
    pipe_cpu = sum(run["cpu"].values()) / len(records) * 1000
    engine_cpu = statistics.mean(r.get("engine_cpu", 0) for r in records)
    task_cpu = statistics.mean(r.get("task_cpu", 0) for r in records)
    pool_cpu = run["cpu"].get("worker pool processes", 0) / len(records) * 1000
    print(
        f"engine share of the task's wall: {engine_in_task / task_ms:.2f} (mean engine {engine_in_task:.0f} ms "
        f"of mean task {task_ms:.0f} ms); engine alone mean {alone_ms:.0f} ms per image"
    )
    idle = (concurrency * drain - sum(r["task"] for r in records) / 1000) / len(records) * 1000
    print(
        f"pool time outside the task: {idle:.0f} ms per image ({concurrency} processes x {drain:.1f} s, less the "
        f"task walls): waiting for a message (receive, dispatch) and for the last ones to finish"
    )
    print(f"CPU during the drain ({drain:.1f} s wall, {cores} cores = {drain * cores:.1f} CPU s):")
    for name, secs in run["cpu"].items():
        print(
            f"  {name:<22}{secs:>7.2f} CPU s = {secs / drain:>5.0%} of one core, "
            f"{secs / (drain * cores):>4.0%} of the machine"
        )
    print(
        f"CPU per image: engine alone {alone_cpu:.0f} ms; pipeline {pipe_cpu:.0f} ms (moto + worker + web over the "
        f"drain / N): CPU ratio {alone_cpu / pipe_cpu:.2f} (the throughput ratio's ceiling when CPU-bound)"
    )
    print(
        f"pool CPU per image {pool_cpu:.0f} ms = engine {engine_cpu:.0f} + rest of the task {task_cpu - engine_cpu:.0f}"
        f" + outside the task (Celery, DB reconnect) {pool_cpu - task_cpu:.0f}"
    )
    print(ratio_line(pipe_rate, engine_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
