"""bench/load.py: the pure parts, and one short run against a fake service on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import load


# --- percentiles -----------------------------------------------------------------------
def test_percentile_interpolates_between_the_closest_ranks():
    values = list(range(1, 101))  # 1..100, in any order
    assert load.percentile(reversed(values), 50) == pytest.approx(50.5)
    assert load.percentile(values, 95) == pytest.approx(95.05)
    assert load.percentile(values, 99) == pytest.approx(99.01)
    assert load.percentile(values, 0) == 1
    assert load.percentile(values, 100) == 100


def test_percentile_of_one_value_and_of_none():
    assert load.percentile([0.25], 99) == 0.25
    assert load.percentile([], 50) is None


# --- the loopback guard ----------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://127.0.0.1/api/upload",
        "http://127.1.2.3:18000/api/v1/images",
        "http://[::1]:8000/api/v1/images",
        "http://localhost:8000/api/upload",
        "https://LOCALHOST/",
    ],
)
def test_loopback_targets_pass(url):
    assert load.check_loopback(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/api/upload",
        "http://10.0.0.5:8000/",
        "http://192.168.1.10/api/v1/images",
        "http://172.16.0.1/",
        "http://8.8.8.8/",
        "http://0.0.0.0:8000/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fe80::1]/",
        "http://localhost.example.com/",  # a name that only starts like localhost
        "http://127.0.0.1.nip.io/",  # a name that only looks like loopback
        "ftp://127.0.0.1/",
        "127.0.0.1:8000/api/upload",  # no scheme: no host to check
    ],
)
def test_other_targets_are_refused(url):
    with pytest.raises(load.Refused, match="refusing"):
        load.check_loopback(url)


def test_the_command_refuses_before_sending_anything(capsys):
    with pytest.raises(SystemExit) as exc:
        load.parse_args(["http://192.168.1.10:8000/api/upload", "u", "p", "2", "photos"])
    assert exc.value.code == 2
    assert "loopback" in capsys.readouterr().err


# --- the door from the URL -------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "door", "base"),
    [
        ("http://127.0.0.1:8000/api/upload", "seed-upload", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/api/upload/", "seed-upload", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000/", "seed-home", "http://127.0.0.1:8000"),
        ("http://127.0.0.1:8000", "seed-home", "http://127.0.0.1:8000"),
        ("http://localhost:18000/api/v1/images", "api", "http://localhost:18000"),
        ("http://[::1]:8000/api/v1/images?x=1", "api", "http://[::1]:8000"),
    ],
)
def test_the_door_comes_from_the_path(url, door, base):
    assert load.detect_door(url) == (door, base)


@pytest.mark.parametrize("path", ["/api/v1/images/abc", "/upload", "/api/v1/token", "/gallery"])
def test_other_paths_are_not_doors(path):
    with pytest.raises(SystemExit, match="unknown upload URL path"):
        load.detect_door(f"http://127.0.0.1:8000{path}")


# --- arguments -------------------------------------------------------------------------
def test_arguments_in_gen_py_order():
    args = load.parse_args(["http://127.0.0.1:8000/api/upload", "alice", "s3cret", "2.5", "photos", "30"])
    assert (args.username, args.password, args.rate) == ("alice", "s3cret", 2.5)
    assert (str(args.folder), args.count) == ("photos", 30)
    assert (args.door, args.base, args.burst) == ("seed-upload", "http://127.0.0.1:8000", None)
    assert (args.connections, args.drain_timeout) == (20, 300)


def test_count_defaults_to_one_minute_of_the_rate():
    assert load.parse_args(["http://127.0.0.1:8000/", "u", "p", "2", "photos"]).count == 120
    assert load.parse_args(["http://127.0.0.1:8000/", "u", "p", "0.001", "photos"]).count == 1


def test_a_burst_sets_the_count_and_ignores_the_rate():
    args = load.parse_args(
        ["http://127.0.0.1:8000/api/v1/images", "u", "p", "0", "photos", "--burst", "100", "--connections", "50"]
    )
    assert (args.count, args.burst, args.connections) == (100, 100, 50)


@pytest.mark.parametrize(
    "extra",
    [
        ["0"],  # RATE 0 without --burst
        ["-1"],
        ["nan"],
        ["2", "10", "--burst", "5"],  # COUNT and --burst
        ["2", "--burst", "0"],
        ["2", "0"],
        ["2", str(load.MAX_COUNT + 1)],
        ["2", "--connections", "0"],
        ["2", "--drain-timeout", "-1"],
    ],
)
def test_bad_arguments_stop_with_usage(extra, capsys):
    rate, *rest = extra
    with pytest.raises(SystemExit) as exc:
        load.parse_args(["http://127.0.0.1:8000/", "u", "p", rate, "photos", *rest])
    assert exc.value.code == 2


def test_a_token_is_for_the_basic_auth_doors_only(capsys):
    args = load.parse_args(["http://127.0.0.1:8000/api/v1/images", "u", "p", "2", "photos", "--auth", "token"])
    assert args.auth == "token"
    with pytest.raises(SystemExit) as exc:  # the seed form carries its credentials in the body
        load.parse_args(["http://127.0.0.1:8000/api/upload", "u", "p", "2", "photos", "--auth", "token"])
    assert exc.value.code == 2


# --- one run against a fake service ----------------------------------------------------
class FakeService(BaseHTTPRequestHandler):
    """Accepts uploads to /api/v1/images; every image is ready 1.5 s after creation except img1 (pending forever)."""

    uploads: list = []
    polls: list = []
    staff = False  # True: queue.json and the ops page answer, as they do for a staff account

    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/v1/token":
            return self.reply(200, {"token": "tok"})
        if self.path == "/login/":
            assert b"csrfmiddlewaretoken=csrf-1" in body and b"username=alice" in body
            self.send_response(302)
            self.send_header("Location", "/")
            self.send_header("Set-Cookie", "sessionid=s1; Path=/")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if self.path != "/api/v1/images":
            return self.reply(404, {})
        n = len(self.uploads)
        self.uploads.append((self.headers.get("Authorization"), body))
        if n == 3:
            return self.reply(429, {"error": {"code": "throttled", "message": "slow down"}})
        return self.reply(202, {"id": f"img{n}", "status": "pending"})

    def do_GET(self):
        if self.path.startswith("/api/v1/images/"):
            image_id = self.path.rsplit("/", 1)[1]
            self.polls.append(self.headers.get("Authorization"))
            if image_id == "img1":
                return self.reply(200, {"id": image_id, "status": "pending", "created_at": "2026-01-01T00:00:00+00:00"})
            return self.reply(
                200,
                {
                    "id": image_id,
                    "status": "ready",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "ready_at": "2026-01-01T00:00:01.500000+00:00",
                },
            )
        if self.path == "/ops/queue.json":
            if self.staff:
                depth = {"visible": 3, "in_flight": 2, "delayed": 0}
                return self.reply(200, {"work": depth, "dead_letter": {**depth, "visible": 0}})
            return self.reply(403, {"error": {"code": "permission_denied", "message": "staff only"}})
        if self.path == "/login/":
            return self.html('<form><input type="hidden" name="csrfmiddlewaretoken" value="csrf-1"></form>')
        if self.path == "/ops/" and self.staff and "sessionid=s1" in self.headers.get("Cookie", ""):
            return self.html("<p>Running: <strong>2</strong> · starting: 1 · stopping (finishing their tasks): 0</p>")
        return self.reply(302)

    def html(self, text):
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def service():
    FakeService.uploads, FakeService.polls, FakeService.staff = [], [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_short_run_counts_ready_errors_and_lost(service, tmp_path, capsys):
    (tmp_path / "a.jpg").write_bytes(b"JPEG-BYTES")
    (tmp_path / "b.PNG").write_bytes(b"PNG-BYTES")
    (tmp_path / "notes.txt").write_text("not a photo")
    argv = [f"{service}/api/v1/images", "alice", "pw", "50", str(tmp_path), "5", "--no-plot"]
    code = load.main([*argv, "--connections", "2", "--drain-timeout", "0.5"])
    out = capsys.readouterr().out

    assert code == 1  # img1 never left pending: lost
    assert "errors by status: 429 x1" in out
    assert "accepted 4, ready 3, failed 0, lost 1" in out
    assert "1 still pending when the 0 s drain timeout passed" in out
    assert "upload -> ready (server ready_at - created_at, 3 ready): p50 1.50 s  p99 1.50 s" in out
    assert "queue depth left out" in out and "worker count left out" in out
    # Uploads: basic auth and the photos cycled (the .txt left out); polls: the token, not the password.
    assert len(FakeService.uploads) == 5
    assert all(auth.startswith("Basic ") for auth, _ in FakeService.uploads)
    bodies = [body for _, body in FakeService.uploads]
    assert [b"JPEG-BYTES" in b for b in bodies] == [True, False, True, False, True]
    assert b'name="image"' in bodies[0] and b"not a photo" not in b"".join(bodies)
    assert FakeService.polls and set(FakeService.polls) == {"Token tok"}


def test_a_staff_account_samples_queue_depth_and_workers(service, tmp_path, capsys):
    FakeService.staff = True
    (tmp_path / "a.jpg").write_bytes(b"JPEG-BYTES")
    argv = [f"{service}/api/upload", "alice", "pw", "2", str(tmp_path), "5", "--no-plot", "--drain-timeout", "0"]
    load.main(argv)
    out = capsys.readouterr().out
    assert "left out" not in out
    assert "queue depth: " in out and "worker count: " in out
