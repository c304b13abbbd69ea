"""Accounts: Django's auth, Argon2, login lockout, staff-created accounts, password change and reset."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

pytestmark = pytest.mark.django_db


def logs_in(client, username, password) -> bool:
    return client.post("/login/", {"username": username, "password": password}).status_code == 302


def test_passwords_are_hashed_with_argon2(owner):
    assert owner.password.startswith("argon2")


def test_repeated_failed_logins_lock_the_account_out_for_that_address(client, owner, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        resp = client.post("/login/", {"username": "owner", "password": "wrong"})
        assert resp.status_code == 200  # the form again, with an error
    assert client.post("/login/", {"username": "owner", "password": "wrong"}).status_code == 429
    locked = client.post("/login/", {"username": "owner", "password": "owner-pass-123"})  # even the right one
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()


def test_a_locked_out_script_gets_a_json_429(client, owner, settings):
    import base64

    bad = base64.b64encode(b"owner:wrong").decode()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        resp = client.get("/api/v1/images", HTTP_AUTHORIZATION=f"Basic {bad}")
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "locked_out"


def test_staff_create_accounts_and_users_cannot(client, owner, staff):
    client.force_login(owner)
    assert client.get("/accounts/new").status_code == 302  # to the admin login: not staff
    client.force_login(staff)
    resp = client.post(
        "/accounts/new",
        {
            "username": "newbie",
            "email": "n@example.com",
            "password1": "a-long-pass-9876",
            "password2": "a-long-pass-9876",
        },
    )
    assert resp.status_code == 302
    assert get_user_model().objects.filter(username="newbie").exists()


@pytest.mark.parametrize("username", ["bad name", "x" * 65, "émile", "<script>"])
def test_usernames_are_validated_on_the_server(client, staff, username):
    client.force_login(staff)
    resp = client.post(
        "/accounts/new", {"username": username, "password1": "a-long-pass-9876", "password2": "a-long-pass-9876"}
    )
    assert resp.status_code == 400
    assert not get_user_model().objects.filter(username=username).exists()


def test_a_user_changes_their_password(client, owner):
    client.force_login(owner)
    resp = client.post(
        "/accounts/password/",
        {"old_password": "owner-pass-123", "new_password1": "brand-new-pass-42", "new_password2": "brand-new-pass-42"},
    )
    assert resp.status_code == 302
    client.logout()
    assert logs_in(client, "owner", "brand-new-pass-42")


def test_password_reset_by_email_works_end_to_end(client, owner, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    owner.email = "owner@example.com"
    owner.save()
    assert client.post("/accounts/reset/", {"email": "owner@example.com"}).status_code == 302
    (message,) = mail.outbox
    link = re.search(r"http://[^\s]+/accounts/reset/[^\s]+/", message.body).group(0)
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    resp = client.post(set_url, {"new_password1": "reset-pass-5150", "new_password2": "reset-pass-5150"})
    assert resp.status_code == 302
    assert logs_in(client, "owner", "reset-pass-5150")


def test_users_cannot_delete_accounts_from_the_site(client, owner):
    client.force_login(owner)
    assert client.get("/admin/auth/user/").status_code == 302  # not staff: no admin
