"""Request and response policies that hold for every page and API route."""

from __future__ import annotations

from django.conf import settings


class TrustedProxyMiddleware:
    """Set REMOTE_ADDR to the client's address, trusting ``TRUSTED_PROXY_COUNT`` proxies in front of us.

    Rate limits (DRF) and login throttling (django-axes) both key on
    REMOTE_ADDR, so this one rule decides the client address for both.
    ``X-Forwarded-For`` is a list that anyone can start: each proxy appends the
    address it saw, so with n trusted proxies (the last of which is
    REMOTE_ADDR itself) the client is the n-th entry from the right. With 0
    (the local stack: nothing in front) the header is ignored entirely.
    Hand-written: it is a few lines, and the rule must be exactly this one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        proxies = settings.TRUSTED_PROXY_COUNT
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if proxies > 0 and forwarded:
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            if hops:
                request.META["REMOTE_ADDR"] = hops[-min(proxies, len(hops))]
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy on every response: the pages need no inline script and no other origin."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
