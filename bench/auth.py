"""What each way of authenticating costs an upload, over real HTTP, side by side.

Starts a quiet local stack on free loopback ports and uploads the same small
PNG through the three doors older and newer clients use, interleaved round by
round so that the stack's state affects all three alike:

- ``token``: ``POST /api/v1/images`` with ``Authorization: Token …`` (the reference);
- ``basic``: the same with HTTP basic auth (the password on every request);
- ``seed``: ``POST /api/upload`` with username and password in the form.

Prints the p50 and p95 of each and the ratio to the token's p50. Before the
credential cache, basic and seed paid an Argon2 verify per request (~180 ms
against ~8 ms).

    .venv/bin/python -m bench.auth --n 60
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import requests
from PIL import Image

from bench.common import PASSWORD, local_stack


def small_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60, help="uploads per way (default 60)")
    args = parser.parse_args()
    data = small_png()
    with local_stack(autoscale=False) as (stack, admin):
        base = stack.web_url
        token = admin.post(f"{base}/api/v1/token", data={"username": "admin", "password": PASSWORD}, timeout=30)
        token.raise_for_status()
        ways = {
            "token": lambda s: s.post(
                f"{base}/api/v1/images",
                files={"image": ("a.png", data)},
                headers={"Authorization": f"Token {token.json()['token']}", "Accept": "application/json"},
                timeout=30,
            ),
            "basic": lambda s: s.post(
                f"{base}/api/v1/images",
                files={"image": ("a.png", data)},
                auth=("admin", PASSWORD),
                headers={"Accept": "application/json"},
                timeout=30,
            ),
            "seed": lambda s: s.post(
                f"{base}/api/upload",
                data={"username": "admin", "password": PASSWORD},
                files={"file": ("a.png", data)},
                timeout=30,
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in ways}
        sessions = {name: requests.Session() for name in ways}
        for name, send in ways.items():  # warm-up: connections, and the first (uncached) verify
            send(sessions[name]).raise_for_status()
        for _ in range(args.n):
            for name, send in ways.items():
                start = time.perf_counter()
                resp = send(sessions[name])
                times[name].append((time.perf_counter() - start) * 1000)
                if resp.status_code != 202:
                    raise SystemExit(f"{name}: {resp.status_code} {resp.text[:200]}")
    reference = statistics.median(times["token"])
    print(f"same 32x32 PNG upload, {args.n} per way, over HTTP on a local stack (ms)")
    for name, values in times.items():
        p50 = statistics.median(values)
        p95 = percentile(values, 0.95)
        print(f"  {name:6s} p50 {p50:6.1f}  p95 {p95:6.1f}  ratio to token p50 {p50 / reference:.2f}")


if __name__ == "__main__":
    main()
