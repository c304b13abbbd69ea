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
    user = authenticate(request, username=username, password=password)
    if user is not None and ttl > 0:
        with _lock:
            if len(_entries) >= MAX_ENTRIES:
                _entries.clear()
            _entries[key] = (user.pk, user.password, time.monotonic() + ttl)
    return user


def forget_all() -> None:
    """Drop every remembered pair (tests; an operator's big red button)."""
    with _lock:
        _entries.clear()
