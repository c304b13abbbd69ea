"""Remote-URL uploads cannot reach into the network (SSRF), on real sockets on loopback."""

import http.server
import threading

import pytest

from imageshare.images import remote
from imageshare.images.errors import ImageshareError
from imageshare.images.http_errors import http_status
from tests.support.images import make_image

pytestmark = pytest.mark.django_db


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1: /photo.jpg, /to-metadata and /to-self (redirects), /slow, /drip."""
    photo = make_image(320, 240)
    gate = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/photo.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo)
            elif self.path == "/to-metadata":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
            elif self.path == "/to-self":
                self.send_response(302)
                self.send_header("Location", "/to-self")
                self.end_headers()
            elif self.path == "/slow":
                gate.wait(5)
            elif self.path == "/drip":  # a byte every 0.1 s: no single read ever times out
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                for byte in photo[:100]:
                    if gate.wait(0.1):
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    gate.set()
    server.shutdown()


def test_loopback_is_refused_by_default(http_server):
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/photo.jpg")
    assert info.value.code == "forbidden_url"


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.jpg",
        "http://192.168.1.1/x.jpg",
        "http://[::1]/x.jpg",
        "http://0.0.0.0/x.jpg",
        "http://localhost/x.jpg",
        "http://[::ffff:127.0.0.1]/x.jpg",
    ],
)
def test_private_link_local_and_reserved_addresses_are_refused(url):
    with pytest.raises(ImageshareError) as info:
        remote.fetch(url)
    assert info.value.code == "forbidden_url"


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x.jpg", "file:///etc/passwd", "gopher://x", "http://", "http://u:p@example.com/"]
)
def test_only_http_and_https_without_credentials(url):
    with pytest.raises(ImageshareError) as info:
        remote.fetch(url)
    assert info.value.code == "bad_url"


def test_a_redirect_is_checked_again(http_server, settings):
    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True  # the test server lives on loopback
    data, name = remote.fetch(f"{http_server}/photo.jpg")
    assert name == "photo.jpg" and data[:2] == b"\xff\xd8"
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/to-metadata")
    assert info.value.code == "forbidden_url"
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/to-self")
    assert info.value.code == "too_many_redirects"


def test_a_server_that_never_answers_times_out(http_server, settings):
    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True
    settings.REMOTE_FETCH_TIMEOUT = 1
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/slow")
    assert info.value.code == "fetch_failed"


def test_a_server_that_drips_bytes_is_cut_off_at_the_deadline(http_server, settings):
    import time

    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True
    settings.REMOTE_FETCH_TIMEOUT = 5  # longer than the whole test: only the deadline can stop it
    settings.REMOTE_FETCH_DEADLINE = 1
    started = time.monotonic()
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/drip")
    assert info.value.code == "fetch_failed" and "longer than 1 s" in info.value.message
    assert time.monotonic() - started < 3


def test_the_byte_limit_applies_to_fetched_images(http_server, settings):
    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True
    settings.MAX_UPLOAD_BYTES = 1024
    with pytest.raises(ImageshareError) as info:
        remote.fetch(f"{http_server}/photo.jpg")
    assert http_status(info.value) == 413


def test_the_api_uploads_from_a_url(owner_client, queue, http_server, settings):
    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True
    resp = owner_client.post(
        "/api/v1/images",
        {"url": f"{http_server}/photo.jpg"},
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    assert resp.status_code == 202, resp.content
    assert resp.json()["width"] == 320
    refused = owner_client.post(
        "/api/v1/images",
        {"url": "http://169.254.169.254/"},
        content_type="application/json",
        HTTP_ACCEPT="application/json",
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "forbidden_url"


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address 169.254.169.254
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::127.0.0.1",  # IPv4-compatible loopback
        "::169.254.169.254",
        "::ffff:10.0.0.1",  # IPv4-mapped private
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1 (obfuscated 0x80fffffe)
    ],
)
def test_it_refuses_ipv6_forms_of_loopback_private_and_metadata_addresses(address, settings):
    settings.REMOTE_FETCH_ALLOW_LOOPBACK = True  # even where loopback is allowed for tests, these stay refused
    assert not remote._allowed(address)


def test_it_allows_a_nat64_form_of_a_public_address():
    assert remote._allowed("64:ff9b::808:808")  # 8.8.8.8
