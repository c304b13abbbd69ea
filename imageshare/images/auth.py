"""API authentication that reports a login lockout (django-axes) as 429, not 401."""

from rest_framework import exceptions, status
from rest_framework.authentication import BasicAuthentication


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many failed logins; try again later."
    default_code = "locked_out"


class LockoutAwareBasicAuthentication(BasicAuthentication):
    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            # axes marks the request it was given (DRF's Request) when it refuses.
            if request is not None and getattr(request, "axes_locked_out", False):
                raise LockedOut() from None
            raise
