"""Rate limits on the doors outside the JSON API: every way in answers 429 past its share.

The JSON API's limits are DRF's throttles (settings.REST_FRAMEWORK). The other
doors are plain Django views; they use the same mechanism here, keyed on the
client address (REMOTE_ADDR, which imageshare.middleware sets from trusted
proxies only) or the account:

- ``POST /api/upload`` credential failures and ``POST /api/v1/token``'s share
  one budget per address (``LOGIN_FAILURES_PER_ADDRESS``): guessing across
  usernames from one address is bounded too, not only per username (axes);
- ``POST /api/register`` per address (``REGISTRATIONS_PER_ADDRESS``);
- the password reset form per address (``PASSWORD_RESETS_PER_ADDRESS``);
- the upload page's form: each file counts against the API's own "uploads"
  rate for the account, so the form is no way around it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from .errors import RateLimited


class _AddressLimit(SimpleRateThrottle):
    """A DRF throttle for plain Django views: one rate, keyed on the client address."""

    def __init__(self, scope: str, rate: str) -> None:
        self.scope = scope
        self.rate = rate
        self.num_requests, self.duration = self.parse_rate(rate)

    def get_rate(self) -> str:
        return self.rate

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": request.META.get("REMOTE_ADDR", "")}


def _refuse(throttle: SimpleRateThrottle, what: str) -> RateLimited:
    wait = throttle.wait()
    return RateLimited("rate_limited", f"Too many {what} from here; try again later.", retry_after=round(wait or 1))


def check_address(request: Any, scope: str, rate_setting: str, what: str) -> None:
    """Count one request of ``scope`` from this address; RateLimited past the rate in ``rate_setting``."""
    throttle = _AddressLimit(scope, getattr(settings, rate_setting))
    if not throttle.allow_request(request, None):
        raise _refuse(throttle, what)


def address_exhausted(request: Any, scope: str, rate_setting: str, what: str) -> None:
    """Refuse when the budget of ``scope`` is spent, without spending it (for failures counted later)."""
    throttle = _AddressLimit(scope, getattr(settings, rate_setting))
    throttle.key = throttle.get_cache_key(request, None)
    throttle.history = throttle.cache.get(throttle.key, [])
    throttle.now = throttle.timer()
    while throttle.history and throttle.history[-1] <= throttle.now - throttle.duration:
        throttle.history.pop()
    if len(throttle.history) >= throttle.num_requests:
        raise _refuse(throttle, what)


def note_failed_login(request: Any) -> None:
    """One credential failure from this address (spends the login-failure budget)."""
    _AddressLimit("login-failures", settings.LOGIN_FAILURES_PER_ADDRESS).allow_request(request, None)


class _UploadsView:
    throttle_scope = "uploads"


def check_form_uploads(request: Any, files: int) -> None:
    """The upload page's files count against the account's API upload rate, one each."""
    throttle = ScopedRateThrottle()
    for _ in range(files):
        if not throttle.allow_request(request, _UploadsView()):
            raise _refuse(throttle, "uploads")
