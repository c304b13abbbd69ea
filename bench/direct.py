"""Web-tier CPU per upload: the multipart door against the direct upload (presign, S3, finalize).

Starts a quiet local stack on free loopback ports, uploads N photos through
``POST /api/v1/images`` (multipart: the bytes pass through gunicorn) and N
through the direct path (``POST /api/v1/uploads``, the form POST to moto's
S3, ``POST .../finalize``), one after another, and reads the web tier's CPU
time around each phase: utime + stime of the gunicorn master and its live
workers, plus their reaped children's (cutime + cstime), from /proc. Only
the web processes count: moto and the workers are other processes. Each
phase starts after a warm-up of two uploads of its own kind.

Run once with the stack's defaults (private mode: no metadata scrub, so
finalize reads only the header and S3 copies the object) and once with
STRIP_ORIGINAL_METADATA=true (finalize reads the whole object to scrub it,
as the multipart door does), unless --only is given.

    .venv/bin/python -m bench.direct --n 20            # make bench-direct
    .venv/bin/python -m bench.direct --corpus ../shared/corpus --n 20
"""

from __future__ import annotations

import argparse
import io
import mimetypes
import os
import statistics
import time
from pathlib import Path

import requests

from bench.common import PASSWORD, local_stack
from ops.process import stat_fields

TICK = os.sysconf("SC_CLK_TCK")


def generated_photos(count: int) -> list[tuple[str, bytes]]:
    """Photo-like JPEGs (noise over gradients, 2048x1536) when no corpus is at hand."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    out = []
    for i in range(count):
        y, x = np.mgrid[0:1536, 0:2048]
        base = np.stack([(x * (i + 1)) % 256, (y * 3 + i * 40) % 256, (x + y) % 256], axis=-1).astype(np.int16)
        noisy = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy, "RGB").save(buf, "JPEG", quality=90)
        out.append((f"generated-{i}.jpg", buf.getvalue()))
    return out


def corpus_photos(folder: Path | None, count: int, min_bytes: int = 0) -> list[tuple[str, bytes]]:
    if folder is not None and folder.is_dir():
        files = sorted(
            p
            for p in folder.iterdir()
            if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.stat().st_size >= min_bytes
        )
        if files:
            return [(p.name, p.read_bytes()) for p in (files * (count // len(files) + 1))[:count]]
    return (generated_photos(min(count, 8)) * (count // 8 + 1))[:count]


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def web_cpu_seconds(master: int) -> float:
    """CPU seconds of the gunicorn master, its live workers and everything they reaped."""
    total = 0
    for pid in [master, *_children(master)]:
        fields = stat_fields(pid)
        if fields:  # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat
            total += sum(int(v) for v in fields[11:15])
    return total / TICK


def _type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "image/jpeg"


def multipart(session: requests.Session, base: str, name: str, data: bytes) -> str:
    resp = session.post(f"{base}/api/v1/images", files={"image": (name, data, _type(name))}, timeout=120)
    resp.raise_for_status()
    return resp.json()["id"]


def direct(session: requests.Session, base: str, name: str, data: bytes) -> str:
    presigned = session.post(f"{base}/api/v1/uploads", json={"size": len(data)}, timeout=30)
    presigned.raise_for_status()
    target = presigned.json()
    fields = {**target["fields"], "Content-Type": _type(name)}
    sent = requests.post(target["url"], data=fields, files={"file": (name, data, _type(name))}, timeout=120)
    sent.raise_for_status()
    done = session.post(target["finalize_url"], json={"name": name}, timeout=60)
    done.raise_for_status()
    return done.json()["id"]


def phase(stack, session, photos, send) -> dict:
    base = stack.web_url
    for name, data in photos[:2]:  # warm-up: imports, first connections, caches
        send(session, base, name, data)
    master = stack.procs["web"].pid
    before, start = web_cpu_seconds(master), time.perf_counter()
    walls, ids = [], []
    for name, data in photos:
        t = time.perf_counter()
        ids.append(send(session, base, name, data))
        walls.append(time.perf_counter() - t)
    cpu = web_cpu_seconds(master) - before
    return {
        "cpu_ms": cpu * 1000 / len(photos),
        "wall_ms": statistics.median(walls) * 1000,
        "total_s": time.perf_counter() - start,
        "ids": ids,
    }


def wait_ready(session, base, ids, timeout=600.0) -> int:
    deadline = time.monotonic() + timeout
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for image_id in list(pending):
            if session.get(f"{base}/api/v1/images/{image_id}", timeout=10).json()["status"] == "ready":
                pending.discard(image_id)
        time.sleep(0.5)
    return len(ids) - len(pending)


def run(photos, strip: bool) -> tuple[dict, dict, int]:
    os.environ["STRIP_ORIGINAL_METADATA"] = "true" if strip else "false"
    with local_stack(autoscale=False, workers=1) as (stack, session):
        token = requests.post(
            f"{stack.web_url}/api/v1/token", data={"username": "admin", "password": PASSWORD}, timeout=30
        ).json()["token"]
        api = requests.Session()
        api.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
        through_web = phase(stack, api, photos, multipart)
        straight = phase(stack, api, photos, direct)
        ready = wait_ready(api, stack.web_url, through_web["ids"] + straight["ids"])
    return through_web, straight, ready


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20, help="uploads per path (default 20)")
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--only", choices=["copy", "scrub"], help="one configuration only")
    parser.add_argument("--min-mb", type=float, default=0, help="only the corpus files of at least this size")
    args = parser.parse_args()

    photos = corpus_photos(args.corpus, args.n, int(args.min_mb * 1e6))
    mb = sum(len(d) for _, d in photos) / len(photos) / 1e6
    source = args.corpus if args.corpus.is_dir() else "generated images"
    print(f"{len(photos)} photos per path from {source}, {mb:.1f} MB on average; web CPU = gunicorn master + workers")
    print(f"{'configuration':<44} {'multipart':>16} {'direct':>16} {'ratio':>7}")
    configs = [("copy", False), ("scrub", True)]
    for label, strip in configs:
        if args.only and args.only != label:
            continue
        through_web, straight, ready = run(photos, strip)
        title = "scrub on: finalize reads, scrubs, puts" if strip else "scrub off (private default): header + S3 copy"
        print(
            f"{title:<44} {through_web['cpu_ms']:>10.1f} ms CPU {straight['cpu_ms']:>10.1f} ms CPU "
            f"{straight['cpu_ms'] / through_web['cpu_ms']:>6.2f}x"
        )
        print(
            f"{'  median wall per upload (client side)':<44} {through_web['wall_ms']:>13.0f} ms "
            f"{straight['wall_ms']:>13.0f} ms   ({ready}/{2 * len(photos)} ready)"
        )


if __name__ == "__main__":
    main()
