"""A load generator for a running imageshare: paced uploads or a burst, then the backlog drained and counted.

Over 400 lines on purpose: a single file to run against any stack (sending,
sampling, reporting and plotting share one clock and one set of records).

    .venv/bin/python -m bench.load UPLOAD_URL USERNAME PASSWORD RATE FOLDER [COUNT]
        [--burst N] [--connections C] [--auth basic|token] [--drain-timeout S] [--plot PATH | --no-plot]

The arguments come in the order of the older clients' ``gen.py``. UPLOAD_URL
chooses the door, by its path:

- ``/api/upload``: the seed form, ``username``, ``password`` and ``file``;
- ``/``: the seed JSON upload, multipart ``image``, basic auth;
- ``/api/v1/images``: the API, multipart ``image``, basic auth.

``--auth token`` sends the last two with an API token instead (basic auth
makes the server verify the password, Argon2, on every upload).

The jpg/png files of FOLDER are cycled. Paced (the default): one upload every
1/RATE s, COUNT of them (default 60 x RATE, one minute), each in its own
thread of a pool of ``--connections`` (one ``requests.Session`` per thread), so
a slow answer never slows the pace unless every connection is busy (then the
uploads that started late are counted and reported). ``--burst N``: N uploads
released at once over the same pool (RATE is then ignored).

Then it polls ``GET /api/v1/images/<id>`` (with an API token from
``/api/v1/token``, so the polls cost the service little) for every accepted
upload until none is pending or ``--drain-timeout`` passes, and prints throughput, upload
latency (send to response) p50/p95/p99, upload to ready p50/p99 from the
server's own timestamps (``ready_at - created_at``), responses by status, and
``lost = accepted - ready - failed``. Exit status 1 when anything is lost.

Once a second, with the same account, it samples the queue depth
(``/ops/queue.json``, the token) and the worker count (the ``/ops/`` page,
through a logged-in session). Both need a **staff** account; with another
account they are left out of the plot and the report says so. The plot (PNG,
matplotlib from requirements-bench.txt) shows request rate, queue depth,
worker count and latency over time.

Traffic goes only to loopback (127.0.0.0/8, localhost, ::1): any other host is
refused before a single request, and no redirect is followed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import ipaddress
import itertools
import math
import re
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

# The door's path -> its name; the image status is read through the API whichever door uploaded.
DOORS = {"/api/upload": "seed-upload", "/": "seed-home", "/api/v1/images": "api"}
IMAGE_SUFFIXES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
MAX_COUNT = 100_000  # a typo in COUNT should not mean a day of uploads
# The ops endpoints answer from the same web workers as the uploads: when those are saturated a sample
# waits its turn, and a late sample (stamped when it arrives) is worth more than none.
SAMPLE_TIMEOUT = 30
GAP_SECONDS = 5  # samples further apart than this are not joined by a line in the plot
LATE_SECONDS = 0.1  # an upload that starts later than this after its slot is "behind schedule"
RUNNING = re.compile(r"Running:\s*<strong>(\d+)</strong>\s*·\s*starting:\s*(\d+)")


class Refused(SystemExit):
    """The target is not on this machine's loopback: no request is sent."""


# --- the pure parts ----------------------------------------------------------------------
def check_loopback(url: str) -> str:
    """The URL's host when it is loopback (127.0.0.0/8, ::1, localhost resolving only there); else Refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise Refused(f"refusing {url!r}: only http:// or https:// URLs")
    host = parts.hostname
    refusal = (
        f"refusing to send load to {host or url!r}: load tests go only to this machine's loopback "
        "(127.0.0.0/8, localhost, [::1])"
    )
    if not host:
        raise Refused(refusal)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        if host.lower() != "localhost" and not host.lower().endswith(".localhost"):
            raise Refused(refusal) from None
        try:  # a hosts file could point "localhost" elsewhere: every address must be loopback
            infos = socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise Refused(f"{refusal} ({host} does not resolve: {exc})") from None
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_loopback:
            raise Refused(refusal)
    return host


def detect_door(url: str) -> tuple[str, str]:
    """(door, base URL) from the upload URL's path: ``/api/upload``, ``/`` or ``/api/v1/images``."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") or "/"
    if path not in DOORS:
        raise SystemExit(f"unknown upload URL path {parts.path!r}: use one of {', '.join(DOORS)}")
    return DOORS[path], urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def percentile(values, p: float) -> float | None:
    """The p-th percentile (0..100) by linear interpolation between the closest ranks; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Paced (or burst) uploads to a loopback imageshare, then the backlog drained and counted.",
    )
    parser.add_argument("url", metavar="UPLOAD_URL", help="…/api/upload, …/ or …/api/v1/images (loopback only)")
    parser.add_argument("username", metavar="USERNAME")
    parser.add_argument("password", metavar="PASSWORD")
    parser.add_argument("rate", metavar="RATE", type=float, help="uploads per second (ignored with --burst)")
    parser.add_argument("folder", metavar="FOLDER", type=Path, help="jpg/png files, cycled")
    parser.add_argument("count", metavar="COUNT", type=int, nargs="?", help="uploads (default 60 x RATE)")
    parser.add_argument("--burst", type=int, metavar="N", help="send N uploads at once instead of pacing")
    parser.add_argument(
        "--auth", choices=("basic", "token"), default="basic",
        help="/ and /api/v1/images: basic auth (default) or an API token from /api/v1/token",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=20, metavar="C", help="concurrent uploads (default 20)")
    parser.add_argument("--drain-timeout", type=float, default=300, metavar="S", help="wait for ready (default 300)")
    parser.add_argument("--timeout", type=float, default=60, metavar="S", help="per request (default 60)")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="PNG (default load-<door>-<time>.png)")
    parser.add_argument("--no-plot", action="store_true", help="no PNG")
    args = parser.parse_args(argv)
    if args.burst is not None:
        if args.count is not None:
            parser.error("give COUNT or --burst N, not both")
        if args.burst < 1:
            parser.error("--burst must be at least 1")
        args.count = args.burst
    else:
        if not (args.rate > 0 and math.isfinite(args.rate)):
            parser.error("RATE must be a positive number of uploads per second")
        if args.count is None:
            args.count = max(1, round(60 * args.rate))
    if not 1 <= args.count <= MAX_COUNT:
        parser.error(f"COUNT must be between 1 and {MAX_COUNT}")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.drain_timeout < 0 or args.timeout <= 0:
        parser.error("timeouts must be positive")
    try:
        args.door, args.base = detect_door(args.url)
        check_loopback(args.url)
    except SystemExit as exc:
        parser.error(str(exc))
    if args.auth == "token" and args.door == "seed-upload":
        parser.error("/api/upload takes the credentials in the form: --auth token does not apply")
    return args


def load_files(folder: Path) -> list[tuple[str, bytes, str]]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no .jpg/.jpeg/.png files in {folder}")
    return [(p.name, p.read_bytes(), IMAGE_SUFFIXES[p.suffix.lower()]) for p in files]


def server_time(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value).timestamp() if value else None


# --- the run -----------------------------------------------------------------------------
@dataclasses.dataclass
class Upload:
    index: int
    scheduled: float  # seconds since the run's start
    started: float = math.nan
    latency: float = math.nan  # send -> response (or error)
    outcome: str = ""  # "202", "429", "ConnectionError", ...
    image_id: str | None = None
    status: str = "pending"  # after the drain: ready, failed, gone (404), or still pending
    created_at: float | None = None  # server epoch seconds
    ready_at: float | None = None
    failure: str = ""


@dataclasses.dataclass
class Sample:
    t: float  # when the answer came (the server read the figures just before)
    values: dict[str, int]


class Load:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.files = load_files(args.folder)
        self.local = threading.local()
        self.read_auth = read_auth(args)
        self.start_clock()

    def start_clock(self) -> None:
        """Time zero: the first upload's slot. Server timestamps are placed against the wall clock read here."""
        self.t0 = time.perf_counter()
        self.wall0 = time.time()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def session(self) -> requests.Session:
        """One Session per thread: requests' sessions are not shared across threads."""
        s = getattr(self.local, "session", None)
        if s is None:
            s = self.local.session = new_session()
        return s

    # -- uploads
    def upload(self, u: Upload) -> Upload:
        a = self.args
        name, data, content_type = self.files[u.index % len(self.files)]
        s = self.session()
        u.started = self.now()
        try:
            if a.door == "seed-upload":
                r = s.post(
                    f"{a.base}/api/upload",
                    data={"username": a.username, "password": a.password},
                    files={"file": (name, data, content_type)},
                    timeout=a.timeout,
                    allow_redirects=False,
                )
            else:
                path = "/api/v1/images" if a.door == "api" else "/"
                r = s.post(
                    f"{a.base}{path}", files={"image": (name, data, content_type)},
                    auth=self.read_auth if a.auth == "token" else (a.username, a.password),
                    timeout=a.timeout, allow_redirects=False,
                )  # fmt: skip
            u.latency = self.now() - u.started
            u.outcome = str(r.status_code)
            if r.status_code == 202:
                body = r.json()
                u.image_id = (body.get("payload") or {}).get("id") if a.door == "seed-upload" else body.get("id")
                if not u.image_id:
                    u.outcome = "202 without id"
        except (requests.RequestException, ValueError) as exc:
            u.latency = self.now() - u.started
            u.outcome = type(exc).__name__
        return u

    def send_all(self, pool: concurrent.futures.ThreadPoolExecutor) -> list[Upload]:
        a = self.args
        uploads = [Upload(i, 0.0 if a.burst else i / a.rate) for i in range(a.count)]
        futures = []
        for u in uploads:
            delay = u.scheduled - self.now()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(self.upload, u))
        concurrent.futures.wait(futures)
        return uploads

    # -- the drain
    def poll(self, u: Upload) -> None:
        a = self.args
        try:
            r = self.session().get(
                f"{a.base}/api/v1/images/{u.image_id}", auth=self.read_auth, timeout=a.timeout, allow_redirects=False
            )
            body = r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return  # still pending as far as we know; the next round asks again
        if r.status_code == 404:
            u.status = "gone"
        elif body is not None:
            u.status = body.get("status", "pending")
            u.created_at = server_time(body.get("created_at"))
            u.ready_at = server_time(body.get("ready_at"))
            if u.status == "failed":
                u.failure = (body.get("error") or {}).get("code") or "failed"

    def drain(self, pool: concurrent.futures.ThreadPoolExecutor, uploads: list[Upload]) -> float:
        """Poll every accepted upload until none is pending or the drain timeout passes; the seconds it took."""
        start = self.now()
        deadline = start + self.args.drain_timeout
        while True:
            pending = [u for u in uploads if u.image_id and u.status == "pending"]
            if not pending:
                break
            list(pool.map(self.poll, pending))
            if self.now() >= deadline or not any(u.status == "pending" for u in pending):
                break
            time.sleep(min(1.0, max(0.0, deadline - self.now())))
        return self.now() - start


class TokenAuth(AuthBase):
    def __init__(self, token: str):
        self.token = token

    def __call__(self, r):
        r.headers["Authorization"] = f"Token {self.token}"
        return r


def read_auth(args: argparse.Namespace):
    """What the status polls and queue.json send: a token when the account gets one, else basic auth.

    Basic auth makes the server verify the password (Argon2, hundreds of ms of CPU) on every request:
    polling with it would load the service more than the uploads under test do.
    """
    try:
        r = new_session().post(
            f"{args.base}/api/v1/token", data={"username": args.username, "password": args.password},
            timeout=args.timeout, allow_redirects=False,
        )  # fmt: skip
        return TokenAuth(r.json()["token"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        print("note: no API token from /api/v1/token: the status polls use basic auth (each costs a password hash)")
        return (args.username, args.password)


def new_session() -> requests.Session:
    """No credentials on the session: each request names its own (the seed form sends them in the body)."""
    s = requests.Session()
    s.trust_env = False  # no proxy from the environment: the request goes to the loopback address given
    s.headers["Accept"] = "application/json"
    return s


class Sampler(threading.Thread):
    """Queue depth and worker count once a second, with a staff session; an answer that does not come is skipped."""

    def __init__(self, load: Load):
        super().__init__(name="sampler", daemon=True)
        self.load = load
        self.queue: list[Sample] = []  # visible, in_flight, dead_letter
        self.pool: list[Sample] = []  # running, starting
        self.stopping = threading.Event()
        self.notes: list[str] = []
        self.session = new_session()
        self.session.auth = load.read_auth  # for queue.json; the ops page reads the logged-in session
        self.queue_ok = self.pool_ok = False

    def login(self) -> None:
        """Probe both sources once; the ops page needs a logged-in session (Django's login form)."""
        a, s = self.load.args, self.session
        r = self.get("/ops/queue.json")
        self.queue_ok = r.status_code == 200
        if not self.queue_ok:
            self.notes.append(f"queue depth left out: /ops/queue.json answered {r.status_code} (needs a staff account)")
        page = self.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        if token:
            s.post(
                f"{a.base}/login/",
                data={"username": a.username, "password": a.password, "csrfmiddlewaretoken": token.group(1)},
                headers={"Referer": f"{a.base}/login/"},
                timeout=SAMPLE_TIMEOUT,
                allow_redirects=False,
            )
        self.pool_ok = self.read_pool() is not None
        if not self.pool_ok:
            self.notes.append("worker count left out: the /ops/ page needs a staff account (login failed or not staff)")

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.load.args.base}{path}", timeout=SAMPLE_TIMEOUT, allow_redirects=False)

    def read_pool(self) -> tuple[int, int] | None:
        r = self.get("/ops/")
        m = RUNNING.search(r.text) if r.status_code == 200 else None
        return (int(m.group(1)), int(m.group(2))) if m else None

    def sample(self) -> None:
        try:
            if self.queue_ok:
                r = self.get("/ops/queue.json")
                if r.status_code == 200:
                    depth = r.json()
                    values = {
                        "visible": depth["work"]["visible"],
                        "in_flight": depth["work"]["in_flight"],
                        "dead_letter": depth["dead_letter"]["visible"],
                    }
                    self.queue.append(Sample(self.load.now(), values))
            if self.pool_ok:
                pool = self.read_pool()
                if pool:
                    self.pool.append(Sample(self.load.now(), {"running": pool[0], "starting": pool[1]}))
        except (requests.RequestException, ValueError, KeyError):
            pass

    def run(self) -> None:
        """One round a second (a slow answer delays the next round, never piles them up) until told to stop."""
        while self.queue_ok or self.pool_ok:
            start = self.load.now()
            self.sample()
            if self.stopping.wait(max(0.0, start + 1 - self.load.now())):
                return

    def coverage(self) -> list[str]:
        """How well the samples cover the run: the ops endpoints answer from the same web workers as the uploads."""
        lines = []
        for what, samples in (("queue depth", self.queue), ("worker count", self.pool)):
            if len(samples) > 1:
                times = [s.t for s in samples]
                gap = max(b - a for a, b in itertools.pairwise(times))
                lines.append(f"{what}: {len(times)} samples over {times[-1] - times[0]:.0f} s, longest gap {gap:.1f} s")
        return lines


# --- the report --------------------------------------------------------------------------
def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def secs(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"


def report(load: Load, uploads: list[Upload], send_seconds: float, drain_seconds: float) -> dict:
    a = load.args
    accepted = [u for u in uploads if u.image_id]
    ready = [u for u in accepted if u.status == "ready" and u.created_at and u.ready_at]
    failed = [u for u in accepted if u.status == "failed"]
    lost = len(accepted) - len(ready) - len(failed)
    latencies = [u.latency for u in uploads if u.outcome == "202"]
    to_ready = [u.ready_at - u.created_at for u in ready]
    outcomes = Counter(u.outcome for u in uploads)
    late = [u.started - u.scheduled for u in uploads if u.started - u.scheduled > LATE_SECONDS]
    figures = {
        "sent": len(uploads),
        "accepted": len(accepted),
        "ready": len(ready),
        "failed": len(failed),
        "lost": lost,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "ready_p50": percentile(to_ready, 50),
        "ready_p99": percentile(to_ready, 99),
    }
    span = max(u.started for u in uploads) - min(u.started for u in uploads)
    offered = f" = {(len(uploads) - 1) / span:.2f}/s offered" if span > 0 else ""
    print(f"sent {len(uploads)} over {span:.1f} s (first to last send){offered}")
    print(
        f"throughput: {len(accepted)} accepted in {send_seconds:.1f} s (first send to last response) "
        f"= {len(accepted) / send_seconds:.2f}/s"
    )
    print(
        f"upload latency (send -> response, {len(latencies)} accepted): p50 {ms(figures['p50'])}  "
        f"p95 {ms(figures['p95'])}  p99 {ms(figures['p99'])}  max {ms(max(latencies, default=None))}"
    )
    print("responses: " + ", ".join(f"{k} x{n}" for k, n in sorted(outcomes.items())))
    errors = {k: n for k, n in outcomes.items() if k != "202"}
    print("errors by status: " + (", ".join(f"{k} x{n}" for k, n in sorted(errors.items())) or "none"))
    if late and not a.burst:
        print(
            f"behind schedule: {len(late)} uploads started >{LATE_SECONDS * 1000:.0f} ms after their slot "
            f"(max {max(late):.2f} s): every connection busy (raise --connections), or this machine too loaded"
        )
    pending = sum(u.status == "pending" for u in accepted)
    drained = f"{pending} still pending when the {a.drain_timeout:.0f} s drain timeout passed" if pending else "none"
    print(f"drain: {drain_seconds:.1f} s after the last response; pending left: {drained}")
    print(
        f"upload -> ready (server ready_at - created_at, {len(ready)} ready): p50 {secs(figures['ready_p50'])}  "
        f"p99 {secs(figures['ready_p99'])}  max {secs(max(to_ready, default=None))}"
    )
    if ready:
        span = max(u.ready_at for u in ready) - min(u.created_at for u in ready)
        rate = f" = {len(ready) / span:.2f}/s" if span > 0 else ""
        print(f"processing: {len(ready)} ready in {span:.1f} s (first created to last ready){rate}")
    if failed:
        print("failed by reason: " + ", ".join(f"{k} x{n}" for k, n in Counter(u.failure for u in failed).items()))
    gone = sum(u.status == "gone" for u in accepted)
    print(
        f"accepted {len(accepted)}, ready {len(ready)}, failed {len(failed)}, lost {lost}"
        + (f" ({gone} answered 404 after being accepted)" if gone else "")
    )
    return figures


def series(samples: list[Sample], field: str) -> tuple[list[float], list[float]]:
    """(times, values) with a break (NaN) wherever no sample came for GAP_SECONDS: no line is drawn across it."""
    xs: list[float] = []
    ys: list[float] = []
    for before, s in zip([None, *samples], samples, strict=False):
        if before is not None and s.t - before.t > GAP_SECONDS:
            xs.append(before.t + 1)  # a step holds its value one sampling interval, not across the gap
            ys.append(math.nan)
        xs.append(s.t)
        ys.append(s.values[field])
    return xs, ys


def plot(load: Load, uploads: list[Upload], sampler: Sampler, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("plot skipped: matplotlib is missing (pip install -r requirements-bench.txt)")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    queue, pool = sampler.queue, sampler.pool
    panels = 2 + bool(queue) + bool(pool)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 2.1 * panels + 0.6), sharex=True, dpi=80)
    a = load.args
    how = f"burst {a.burst}" if a.burst else f"{a.rate:g}/s"
    fig.suptitle(f"imageshare load: {a.door}, {how}, {a.count} uploads, {a.connections} connections", fontsize=10)
    axes = iter(axes)

    ax = next(axes)
    end = max([u.started + u.latency for u in uploads if not math.isnan(u.latency)] + [s.t for s in queue + pool] + [1])
    bins = range(int(end) + 2)
    ax.hist([u.started for u in uploads], bins=bins, histtype="step", label="sent")
    ax.hist([u.started + u.latency for u in uploads if u.outcome == "202"], bins=bins, histtype="step", label="202")
    errors = [u.started + u.latency for u in uploads if u.outcome not in ("", "202")]
    if errors:
        ax.hist(errors, bins=bins, histtype="step", color="red", label="errors")
    ax.set_ylabel("uploads/s")
    ax.legend(loc="upper right", fontsize=8)

    if queue:
        ax = next(axes)
        ax.plot(*series(queue, "visible"), ".-", ms=3, label="visible")
        ax.plot(*series(queue, "in_flight"), ".-", ms=3, label="in flight")
        if any(s.values["dead_letter"] for s in queue):
            ax.plot(*series(queue, "dead_letter"), ".-", ms=3, color="red", label="dead letter")
        ax.set_ylabel("queue (messages)")
        ax.legend(loc="upper right", fontsize=8)
    if pool:
        ax = next(axes)
        ax.step(*series(pool, "running"), ".-", ms=3, where="post", label="running")
        ax.step(*series(pool, "starting"), ".-", ms=3, where="post", label="starting")
        ax.set_ylabel("workers")
        ax.set_ylim(bottom=0)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="upper right", fontsize=8)

    ax = next(axes)
    ok = [u for u in uploads if u.outcome == "202"]
    ax.scatter([u.started for u in ok], [u.latency for u in ok], s=6, label="upload (send -> 202)")
    ready = [u for u in uploads if u.status == "ready" and u.created_at and u.ready_at]
    ax.scatter(
        [u.created_at - load.wall0 for u in ready],
        [u.ready_at - u.created_at for u in ready],
        s=6,
        label="upload -> ready (server)",
    )
    if ok or ready:  # a log scale needs one positive value
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("latency (s)")
    ax.set_xlabel("seconds since the first upload")
    ax.legend(loc="best", fontsize=8)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    print(f"plot: {path}")


def main(argv=None) -> int:
    args = parse_args(argv)
    load = Load(args)
    mode = f"burst of {args.burst}" if args.burst else f"paced {args.rate:g}/s"
    print(
        f"POST {args.url} (door {args.door}) as {args.username}: {mode}, {args.count} uploads, "
        f"{len(load.files)} files from {args.folder} cycled, up to {args.connections} connections"
    )
    sampler = Sampler(load)
    try:
        sampler.login()
    except requests.RequestException as exc:
        sampler.notes.append(f"queue depth and worker count left out: {exc}")
    load.start_clock()
    sampler.start()
    with concurrent.futures.ThreadPoolExecutor(args.connections, thread_name_prefix="upload") as pool:
        uploads = load.send_all(pool)
        send_seconds = max(u.started + u.latency for u in uploads) - min(u.started for u in uploads)
        drain_seconds = load.drain(pool, uploads)
    sampler.stopping.set()
    sampler.join(timeout=30)
    for note in sampler.notes:
        print(note)
    for line in sampler.coverage():
        print(line)
    figures = report(load, uploads, max(send_seconds, 1e-9), drain_seconds)
    if not args.no_plot:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(load.wall0))
        plot(load, uploads, sampler, args.plot or Path(f"load-{args.door}-{stamp}.png"))
    return 1 if figures["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
