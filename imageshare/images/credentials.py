"""Recognise a username and password already verified, without paying for Argon2 again.

Basic auth and the seed ``/api/upload`` door send the password with every
request; verifying it costs ~180 ms of Argon2 each time, against ~8 ms for a
token. After one successful verify, this process remembers the pair for a
short while under a keyed hash (HMAC with SECRET_KEY: the password itself is
never kept), together with the user's password hash at that moment. A hit
still reads the user row, so the entry is dropped as soon as the password
changes (the hash differs), the account is deactivated, or it expires
(``CREDENTIAL_CACHE_SECONDS``). A wrong password never hits: it pays the full
verify and counts towards the login throttle, exactly as before.

Hand-written because Django has no such cache; an in-process dict because the
pair must never leave the process (a shared cache would store a password
oracle where others can read it).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.core.cache import cache

from .errors import RateLimited

_entries: dict[bytes, tuple[int, str, float]] = {}  # key -> (user id, password hash, expires at)
_lock = threading.Lock()
MAX_ENTRIES = 10_000  # bounds memory whatever the traffic: past it, the table starts afresh


def _key(username: str, password: str) -> bytes:
    message = username.encode() + b"\0" + password.encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


def _remembered(key: bytes):
    """The user of a live entry whose password and account are unchanged, else None (and the entry goes)."""
    with _lock:
        entry = _entries.get(key)
    if entry is None:
        return None
    user_id, password_hash, expires = entry
    if expires > time.monotonic():
        user = get_user_model().objects.filter(pk=user_id).first()
        if user is not None and user.is_active and user.password == password_hash:
            return user
    with _lock:
        _entries.pop(key, None)
    return None


def authenticate_password(request, username: str, password: str):
    """Django's ``authenticate``, with a verified pair recognised for ``CREDENTIAL_CACHE_SECONDS``."""
    ttl = settings.CREDENTIAL_CACHE_SECONDS
    key = _key(username, password) if ttl > 0 else b""
    if ttl > 0:
        user = _remembered(key)
        if user is not None:
            return user
    slow_down(username)
    user = authenticate(request, username=username, password=password)
    if user is None:
        _note_failure(username)
    if user is not None and ttl > 0:
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[key] = (user.pk, user.password, time.monotonic() + ttl)
    return user


def _failures_key(username: str) -> str:
    return f"login-failures-user:{hashlib.sha256(username.lower().encode()).hexdigest()}"


def _note_failure(username: str) -> None:
    key = _failures_key(username)
    now = time.time()
    recent = [t for t in cache.get(key, []) if now - t < settings.LOGIN_SLOWDOWN_WINDOW_SECONDS]
    cache.set(key, [*recent[-200:], now], settings.LOGIN_SLOWDOWN_WINDOW_SECONDS)


def slow_down(username: str) -> None:
    """Past ``LOGIN_SLOWDOWN_AFTER`` failures for a username from anywhere, one check per ``LOGIN_SLOWDOWN_SECONDS``.

    The per-address lockout (django-axes, username and address together)
    cannot stop guessing spread over many addresses, and a hard per-user lock
    would let anyone lock the owner out. So a guessed-at account is slowed
    down instead: every check of it, the owner's too, waits its turn of a
    few seconds (429 with Retry-After), which caps guessing at a few hundred
    an hour while the owner gets in after a short wait.
    """
    key = _failures_key(username)
    now = time.time()
    recent = [t for t in cache.get(key, []) if now - t < settings.LOGIN_SLOWDOWN_WINDOW_SECONDS]
    if len(recent) < settings.LOGIN_SLOWDOWN_AFTER:
        return
    turn_key = key + ":turn"
    if not cache.add(turn_key, now, settings.LOGIN_SLOWDOWN_SECONDS):  # someone had this turn
        raise RateLimited(
            "slow_down",
            "Many wrong passwords for this account lately; try again in a few seconds.",
            retry_after=settings.LOGIN_SLOWDOWN_SECONDS,
        )


def forget_all() -> None:
    """Drop every remembered pair (tests; an operator's big red button)."""
    with _lock:
        _entries.clear()
