"""Fetch an image from a URL for an upload, without becoming a way into the network.

Written on http.client rather than requests because the check and the
connection must use the *same* address: requests resolves the name again when
it connects, so a name that resolves to a public address for the check and
to 169.254.169.254 for the connection (DNS rebinding) would slip through.

One fetch:
1. Only http and https, with a host name or address.
2. Resolve the host; refuse if any address is loopback, link-local (cloud
   metadata), private, reserved, multicast or otherwise not global.
3. Connect to the checked address (TLS still verifies the host name).
4. Follow at most ``REMOTE_FETCH_MAX_REDIRECTS`` redirects, checking each
   new location from step 1.
5. Read at most ``MAX_UPLOAD_BYTES`` (+1 to detect more), with connect and
   read timeouts, and give up when the whole fetch (redirects included) passes
   ``REMOTE_FETCH_DEADLINE`` seconds: per-read timeouts alone let a server
   that drips a byte at a time hold a web worker almost forever.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from .errors import BadInput, TooLarge

_REDIRECTS = {301, 302, 303, 307, 308}
MAX_URL_LENGTH = 2048


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, address, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, address, port, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


# IPv6 forms that carry an IPv4 address the network may route to: NAT64
# (64:ff9b::/96, and the local-use 64:ff9b:1::/48), 6to4 (2002::/16) and the
# deprecated IPv4-compatible ::a.b.c.d. Each is judged by the IPv4 inside.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that embed one."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.teredo:
        return ip.teredo[1]  # the client's address (obfuscated in the packet, plain here)
    if ip.sixtofour:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (:: and ::1 are themselves)
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _allowed(address: str) -> bool:
    """Only public unicast hosts, judged by the IPv4 address any IPv6 form embeds."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if embedded is not None:
        # Judged by the IPv4 inside, and never loopback: the tests' loopback
        # allowance is for 127.0.0.1 itself, not for a disguise of it.
        return embedded.is_global and not embedded.is_multicast
    if ip.is_loopback and settings.REMOTE_FETCH_ALLOW_LOOPBACK:
        return True
    return ip.is_global and not ip.is_multicast


def _resolve(host: str, port: int) -> str:
    if settings.REMOTE_FETCH_LOOPBACK_ONLY and host not in ("localhost", "127.0.0.1", "::1"):
        # Test stacks: no lookup, no connection beyond this machine, whatever URL a fuzzer makes up.
        raise BadInput("forbidden_url", "That address is not allowed: this server fetches from loopback only.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise BadInput("bad_url", f"The host {host!r} cannot be resolved.") from exc
    addresses = sorted({info[4][0] for info in infos})
    if not addresses:
        raise BadInput("bad_url", f"The host {host!r} has no address.")
    for address in addresses:
        if not _allowed(address):
            raise BadInput("forbidden_url", "That address is not allowed: only public internet hosts.")
    return addresses[0]


def fetch(url: str) -> tuple[bytes, str]:
    """The image bytes and a file name for ``url``; an ImageshareError (BadInput, TooLarge) on anything refused."""
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        raise BadInput("bad_url", f"'url' must be a string of at most {MAX_URL_LENGTH} characters.")
    deadline = time.monotonic() + settings.REMOTE_FETCH_DEADLINE
    for _ in range(settings.REMOTE_FETCH_MAX_REDIRECTS + 1):
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. "http://[" (an unclosed IPv6 bracket)
            raise BadInput("bad_url", f"The URL cannot be read: {exc}.") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput("bad_url", "Only http and https URLs with a host are accepted.")
        if parts.username or parts.password:
            raise BadInput("bad_url", "URLs with credentials are not accepted.")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise BadInput("bad_url", "The URL's port is not valid.") from exc
        address = _resolve(parts.hostname, port)
        cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        conn = cls(parts.hostname, address, port, timeout=_timeout(deadline))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers={"User-Agent": "imageshare-fetch/1", "Accept": "image/*"})
            sock = conn.sock  # kept: the connection forgets it once a closing response is read
            resp = conn.getresponse()
            if resp.status in _REDIRECTS:
                location = resp.getheader("Location")
                if not location:
                    raise BadInput("bad_url", "The server redirected without a location.")
                url = urljoin(url, location)
                continue
            if resp.status != 200:
                raise BadInput("fetch_failed", f"The server answered {resp.status}.")
            declared = resp.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > settings.MAX_UPLOAD_BYTES:
                raise TooLarge("too_large", f"The image is larger than {settings.MAX_UPLOAD_BYTES} bytes.")
            data = _read_body(sock, resp, deadline)
            name = parts.path.rsplit("/", 1)[-1] or parts.hostname
            return data, name
        except (OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline:  # a read cut short by the deadline says so
                _timeout(deadline)
            raise BadInput("fetch_failed", f"The image could not be fetched: {exc}") from exc
        finally:
            conn.close()
    raise BadInput("too_many_redirects", "The URL redirected too many times.")


def _timeout(deadline: float) -> float:
    """The per-operation timeout, shortened to what is left of the whole fetch."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise BadInput("fetch_failed", f"The image took longer than {settings.REMOTE_FETCH_DEADLINE} s to fetch.")
    return min(settings.REMOTE_FETCH_TIMEOUT, left)


def _read_body(sock, resp, deadline: float) -> bytes:
    """At most MAX_UPLOAD_BYTES, one socket read at a time so the deadline is checked between reads."""
    limit = settings.MAX_UPLOAD_BYTES
    chunks, size = [], 0
    while True:
        sock.settimeout(_timeout(deadline))
        chunk = resp.read1(64 * 1024)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge("too_large", f"The image is larger than {limit} bytes.")
