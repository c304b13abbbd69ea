"""A fault-injecting HTTP proxy in front of the local AWS (moto): S3 and SQS errors at the edge.

A threaded ``http.server`` on 127.0.0.1 forwards every request to moto's port
and answers with moto's response, except where its *plan* says otherwise for
an S3 object request (path-style: ``/<bucket>/<key>``), or its *sqs_plan*
for an SQS call (JSON protocol: ``X-Amz-Target: AmazonSQS.<Operation>``):

- an S3 error document with its status (``INTERNAL_ERROR``: 500
  InternalError; ``SLOW_DOWN``: 503 SlowDown, S3's throttling answer);
- a delay before forwarding (``delay(2.0)``: a slow S3);
- ``RESET``: the connection is closed without an answer.

Everything else passes through untouched, so a process can be pointed at
the proxy with ``AWS_ENDPOINT_URL`` and keep working. A plan is any callable
``(method, target) -> Fault | None`` (target: the S3 key, or the SQS
operation name); it is called under the proxy's lock, once per request, in
arrival order. ``EveryNth`` and ``FirstPerKey`` are the two the fault suite
uses. What was injected is kept in ``injected`` (method, target, fault).
Note that botocore sends SQS calls to the endpoint (the proxy) but the
queue URL in them is moto's own: only the endpoint matters.

    with FaultProxy(moto_port, bucket, EveryNth(3, [INTERNAL_ERROR, SLOW_DOWN, delay(2)])) as proxy:
        env["AWS_ENDPOINT_URL"] = proxy.url
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
# Not forwarded (RFC 9110 hop-by-hop, plus what the proxy itself settles:
# the body is read whole, 100-continue answered here, the length recomputed).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)


@dataclass(frozen=True)
class Fault:
    kind: str  # "error", "delay" or "reset"
    status: int = 0
    code: str = ""
    message: str = ""
    seconds: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "error":
            return f"{self.status} {self.code}"
        if self.kind == "delay":
            return f"delay {self.seconds:g}s"
        return self.kind


INTERNAL_ERROR = Fault("error", 500, "InternalError", "We encountered an internal error. Please try again.")
SLOW_DOWN = Fault("error", 503, "SlowDown", "Please reduce your request rate.")
RESET = Fault("reset")


def delay(seconds: float) -> Fault:
    return Fault("delay", seconds=seconds)


Plan = Callable[[str, str], Fault | None]


class EveryNth:
    """Every ``n``-th S3 object request of ``methods`` gets the next fault of ``faults`` (in turn).

    Never the same request twice in a row: the retry of a faulted request
    (same method and key) is let through, so the client's own retries always
    cure what this injects. What outlasts them is ``FirstPerKey``'s job.
    """

    def __init__(self, n: int, faults: Sequence[Fault], methods: Iterable[str] = ("GET", "PUT")):
        self.n = n
        self.faults = list(faults)
        self.methods = {m.upper() for m in methods}
        self.count = 0
        self.turn = 0
        self.last_faulted: set[tuple[str, str]] = set()

    def __call__(self, method: str, key: str) -> Fault | None:
        if method not in self.methods:
            return None
        if (method, key) in self.last_faulted:  # its retry goes through
            self.last_faulted.discard((method, key))
            return None
        self.count += 1
        if self.count % self.n:
            return None
        fault = self.faults[self.turn % len(self.faults)]
        self.turn += 1
        self.last_faulted.add((method, key))
        return fault


class FirstPerKey:
    """The first ``k`` requests of ``methods`` for each key under ``prefix`` get ``fault``; later ones pass."""

    def __init__(self, k: int, fault: Fault, prefix: str = "originals/", methods: Iterable[str] = ("HEAD", "GET")):
        self.k = k
        self.fault = fault
        self.prefix = prefix
        self.methods = {m.upper() for m in methods}
        self.seen: Counter[str] = Counter()

    def __call__(self, method: str, key: str) -> Fault | None:
        if method not in self.methods or not key.startswith(self.prefix):
            return None
        self.seen[key] += 1
        return self.fault if self.seen[key] <= self.k else None


def _error_document(fault: Fault, key: str, sqs: bool) -> tuple[str, bytes]:
    if sqs:  # the JSON protocol's error shape
        doc = f'{{"__type": "com.amazonaws.sqs#{fault.code}", "message": "{fault.message}"}}'
        return "application/x-amz-json-1.0", doc.encode()
    return "application/xml", (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        f"<Key>{key}</Key><RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore and kombu expect
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # quiet: what matters is counted in FaultProxy.injected

    def do_GET(self):
        self._relay()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _relay(self) -> None:
        body = self._read_body()  # always whole, also before a fault: the connection stays in step
        owner = self.server.owner
        key = owner.s3_key(self.path)
        operation = owner.sqs_operation(self.headers.get("X-Amz-Target", ""))
        if key is not None:
            fault = owner.decide("s3", self.command, key)
        elif operation is not None:
            fault = owner.decide("sqs", self.command, operation)
        else:
            fault = None
        if fault is not None and fault.kind == "reset":
            self.close_connection = True
            # SO_LINGER 0: the close sends a RST, the client sees the connection reset, no answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        if fault is not None and fault.kind == "error":
            content_type, doc = _error_document(fault, key or "", sqs=key is None)
            self.send_response_only(fault.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(doc)))
            self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
            if fault.status == 503:
                self.send_header("Retry-After", "1")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(doc)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        upstream = http.client.HTTPConnection(HOST, self.server.owner.upstream_port, timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    upstream.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            resp = upstream.getresponse()
            data = resp.read()
        except OSError as exc:  # moto is down: the client sees a 502, as from a real proxy
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            upstream.close()
        self.send_response_only(resp.status, resp.reason)
        for name, value in resp.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            if resp.getheader("Content-Length") is not None:
                self.send_header("Content-Length", resp.getheader("Content-Length"))
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an SQS long poll in flight does not hold up stop()
    owner: FaultProxy

    def handle_error(self, request, client_address) -> None:
        # A client that drops its connection (a reset sent by us, a worker
        # killed mid-request) is part of the game, not an error of the proxy.
        pass


class FaultProxy:
    """The proxy: ``start()`` (or ``with``), ``url``, ``plan`` / ``sqs_plan`` (swap at any time), ``injected``."""

    def __init__(self, upstream_port: int, bucket: str, plan: Plan | None = None, sqs_plan: Plan | None = None):
        self.upstream_port = upstream_port
        self.bucket = bucket
        self.plan = plan
        self.sqs_plan = sqs_plan
        self.injected: list[tuple[str, str, Fault]] = []
        self.s3_requests = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def s3_key(self, path: str) -> str | None:
        """The object key of a path-style S3 request to the bucket, or None (SQS, the bucket itself)."""
        path = urlsplit(path).path
        prefix = f"/{self.bucket}/"
        return unquote(path[len(prefix) :]) if path.startswith(prefix) and len(path) > len(prefix) else None

    @staticmethod
    def sqs_operation(target: str) -> str | None:
        """ "AmazonSQS.ReceiveMessage" -> "ReceiveMessage"; None for anything else."""
        return target.split(".", 1)[1] if target.startswith("AmazonSQS.") else None

    def decide(self, service: str, method: str, target: str) -> Fault | None:
        with self._lock:
            if service == "s3":
                self.s3_requests += 1
            plan = self.plan if service == "s3" else self.sqs_plan
            fault = plan(method, target) if plan is not None else None
            if fault is not None:
                self.injected.append((method, target, fault))
            return fault

    def counts(self) -> Counter[str]:
        """Injected faults by label, e.g. {"500 InternalError": 3, "delay 2s": 2}."""
        with self._lock:
            return Counter(f.label for _, _, f in self.injected)

    def start(self) -> FaultProxy:
        self._server = _Server((HOST, 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
