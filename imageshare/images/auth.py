"""API authentication: basic auth that costs one Argon2 verify, not one per request, and reports a lockout as 429."""

from rest_framework import exceptions, status
from rest_framework.authentication import BasicAuthentication

from .credentials import authenticate_password
from .errors import RateLimited


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many failed logins; try again later."
    default_code = "locked_out"


class LockoutAwareBasicAuthentication(BasicAuthentication):
    def authenticate_credentials(self, userid, password, request=None):
        """DRF's check, through the credential cache (``credentials.authenticate_password``)."""
        try:
            user = authenticate_password(request, userid, password)
        except RateLimited as exc:
            raise exceptions.Throttled(wait=exc.retry_after, detail=exc.message) from None
        if user is None:
            # axes marks the request it was given (DRF's Request) when it refuses.
            if request is not None and getattr(request, "axes_locked_out", False):
                raise LockedOut()
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return (user, None)
