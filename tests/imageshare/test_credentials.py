"""Basic-auth and form credentials cost one Argon2 verify, not one per request."""

import pytest

from imageshare.images import credentials

pytestmark = pytest.mark.django_db


def check(username, password):
    from django.test import RequestFactory

    return credentials.authenticate_password(RequestFactory().post("/api/upload"), username, password)


@pytest.fixture(autouse=True)
def verifies(monkeypatch):
    """Count the full verifies (Django's authenticate) behind the cache."""
    credentials.forget_all()
    calls = []
    real = credentials.authenticate

    def counting(request, **kwargs):
        calls.append(kwargs["username"])
        return real(request, **kwargs)

    monkeypatch.setattr(credentials, "authenticate", counting)
    yield calls
    credentials.forget_all()


def test_it_verifies_a_password_once_then_recognises_it(owner, verifies):
    assert check("owner", "owner-pass-123") == owner
    assert check("owner", "owner-pass-123") == owner
    assert verifies == ["owner"]


def test_a_wrong_password_always_pays_the_full_verify(owner, verifies):
    check("owner", "owner-pass-123")
    for _ in range(3):
        assert check("owner", "wrong-password") is None
    assert verifies == ["owner"] * 4


def test_a_password_change_drops_the_remembered_pair(owner, verifies):
    check("owner", "owner-pass-123")
    owner.set_password("a-new-long-password")
    owner.save()
    assert check("owner", "owner-pass-123") is None
    assert check("owner", "a-new-long-password") == owner


def test_a_deactivated_account_is_not_recognised(owner):
    check("owner", "owner-pass-123")
    owner.is_active = False
    owner.save()
    assert check("owner", "owner-pass-123") is None


def test_a_remembered_pair_expires(owner, verifies, monkeypatch, settings):
    settings.CREDENTIAL_CACHE_SECONDS = 60
    now = [1000.0]
    monkeypatch.setattr(credentials.time, "monotonic", lambda: now[0])
    check("owner", "owner-pass-123")
    now[0] += 61
    assert check("owner", "owner-pass-123") == owner
    assert verifies == ["owner", "owner"]


def test_the_cache_never_holds_the_password(owner):
    check("owner", "owner-pass-123")
    kept = repr(credentials._entries).encode()
    assert credentials._entries and b"owner-pass-123" not in kept


def test_it_can_be_turned_off(owner, verifies, settings):
    settings.CREDENTIAL_CACHE_SECONDS = 0
    check("owner", "owner-pass-123")
    check("owner", "owner-pass-123")
    assert verifies == ["owner", "owner"]


def test_a_username_guessed_at_from_many_addresses_is_slowed_down_not_locked(owner, settings):
    """Past the threshold every check of the account waits its turn; the owner gets in after it."""
    from imageshare.images.errors import RateLimited

    settings.LOGIN_SLOWDOWN_AFTER = 3
    settings.LOGIN_SLOWDOWN_SECONDS = 60
    for _ in range(3):
        assert check("owner", "a-guess") is None
    assert check("owner", "owner-pass-123") == owner  # this check takes the turn
    with pytest.raises(RateLimited) as refused:
        check("owner", "another-guess")
    assert refused.value.retry_after == 60
    from django.core.cache import cache

    cache.clear()  # the turn has passed (and the window with it)
    assert check("owner", "owner-pass-123") == owner
