"""Every door outside the JSON API answers 429 past its share, in its usual shape."""

import pytest
from django.test import Client

from tests.conftest import upload_file

pytestmark = pytest.mark.django_db


def test_credential_guessing_on_api_upload_is_limited_per_address_across_usernames(owner, queue, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = "3/h"
    client = Client()
    statuses = [
        client.post("/api/upload", {"username": f"guess{i}", "password": "nope", "file": upload_file()}).status_code
        for i in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    refused = client.post("/api/upload", {"username": "owner", "password": "nope", "file": upload_file()})
    assert refused.json() == {"success": False, "error": {"code": 429, "message": refused.json()["error"]["message"]}}
    assert refused.headers["Retry-After"]


def test_a_locked_out_account_on_api_upload_answers_429_not_401(owner, queue, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    for _ in range(2):
        client.post("/api/upload", {"username": "owner", "password": "nope", "file": upload_file()})
    refused = client.post("/api/upload", {"username": "owner", "password": "nope", "file": upload_file()})
    assert refused.status_code == 429


def test_registrations_are_limited_per_address(settings):
    settings.OPEN_REGISTRATION = True
    settings.REGISTRATIONS_PER_ADDRESS = "2/h"
    client = Client()
    statuses = [
        client.post("/api/register", {"username": f"new{i}", "password": "a-long-pass-9876"}).status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_password_reset_emails_are_limited_per_address(owner, settings, mailoutbox):
    owner.email = "owner@example.com"
    owner.save()
    settings.PASSWORD_RESETS_PER_ADDRESS = "2/h"
    client = Client()
    statuses = [client.post("/accounts/reset/", {"email": "owner@example.com"}).status_code for _ in range(4)]
    assert statuses == [302, 302, 429, 429] and len(mailoutbox) == 2


def test_the_upload_form_counts_against_the_api_upload_rate(owner_client, queue, monkeypatch):
    rates = {"anon": "60/min", "user": "600/min", "uploads": "3/min"}
    monkeypatch.setattr("rest_framework.throttling.SimpleRateThrottle.THROTTLE_RATES", rates)
    ok = owner_client.post("/upload", {"image": [upload_file(f"{i}.jpg") for i in range(2)]})
    assert ok.status_code == 302
    refused = owner_client.post("/upload", {"image": [upload_file(f"{i}.jpg") for i in range(2)]})
    assert refused.status_code == 429 and b"Too many uploads" in refused.content
