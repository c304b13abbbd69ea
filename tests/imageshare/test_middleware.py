"""The client address comes from trusted proxies only; every response carries a Content-Security-Policy."""

import pytest
from django.test import RequestFactory, override_settings

from imageshare.middleware import TrustedProxyMiddleware

pytestmark = pytest.mark.django_db


def client_address(proxies: int, forwarded: str | None, remote: str = "10.0.0.5") -> str:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **extra)
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        TrustedProxyMiddleware(lambda r: None)(request)
    return request.META["REMOTE_ADDR"]


def test_without_trusted_proxies_a_forwarded_header_is_ignored():
    assert client_address(0, "198.51.100.7") == "10.0.0.5"


def test_behind_one_proxy_the_client_is_the_address_it_appended():
    # The client forged the first entry; the load balancer appended the address it saw.
    assert client_address(1, "198.51.100.7, 203.0.113.9") == "203.0.113.9"


def test_behind_two_proxies_the_client_is_the_second_from_the_right():
    assert client_address(2, "198.51.100.7, 203.0.113.9, 10.1.1.1") == "203.0.113.9"


def test_a_forged_forwarded_for_does_not_dodge_the_token_rate_limit(client, monkeypatch):
    # DRF reads the rates into a class attribute at import: set them there.
    rates = {"anon": "3/min", "user": "9/min", "uploads": "9/min"}
    monkeypatch.setattr("rest_framework.throttling.SimpleRateThrottle.THROTTLE_RATES", rates)
    statuses = [
        client.post(
            "/api/v1/token", {"username": "nobody", "password": "x"}, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}"
        ).status_code
        for i in range(5)
    ]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]


def test_every_response_carries_a_content_security_policy(client):
    for path in ("/login/", "/api/v1/images", "/healthz"):
        policy = client.get(path).headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "object-src 'none'" in policy, path
