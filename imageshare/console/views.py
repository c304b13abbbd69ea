"""Operator endpoints: queue depth as JSON and as Prometheus metrics, and the ops page."""

from __future__ import annotations

import hmac
import logging

from botocore.exceptions import BotoCoreError, ClientError
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import AnonymousUser
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from drf_spectacular.utils import OpenApiParameter, extend_schema
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from imageshare.images.commands import retry_image, retryable_images
from imageshare.images.errors import ImageshareError
from imageshare.images.models import Image

from .models import ScalingDecision, ScalingPolicy
from .queues import queue_depth
from .stranded import last_redispatch, redispatched_total, stranded_images

log = logging.getLogger(__name__)


class MetricsTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer $METRICS_TOKEN``: what a Prometheus scraper sends."""

    def authenticate(self, request):
        token = settings.METRICS_TOKEN
        header = request.headers.get("Authorization", "")
        if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:], token):
            return AnonymousUser(), "metrics-token"
        return None

    def authenticate_header(self, request):
        return "Bearer"


class IsStaffOrMetricsToken(BasePermission):
    def has_permission(self, request, view):
        return request.auth == "metrics-token" or bool(request.user and request.user.is_staff)


class PlainTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


class _OpsView(APIView):
    authentication_classes = [MetricsTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    permission_classes = [IsStaffOrMetricsToken]


def _depth_or_error():
    try:
        return queue_depth(), None
    except (BotoCoreError, ClientError) as exc:
        log.warning("cannot read queue depth: %s", exc)
        return None, str(exc)


def _images_by_status() -> dict[str, int]:
    counts = {s: 0 for s in Image.Status.values}
    counts.update(dict(Image.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")))
    return counts


class QueueView(_OpsView):
    """Queue depth (visible, in flight, delayed; work and dead-letter) and images by status."""

    def get(self, request):
        depth, error = _depth_or_error()
        if error:
            return Response({"error": {"code": "sqs_unavailable", "message": error}}, status=503)
        return Response({**depth, "images": _images_by_status()})


class _Collector:
    """Collects on each scrape: the figures come from SQS and the database, not from counters in memory."""

    def collect(self):
        depth, error = _depth_or_error()
        up = GaugeMetricFamily("imageshare_sqs_up", "1 if SQS answered the last scrape")
        up.add_metric([], 0 if error else 1)
        yield up
        if depth:
            g = GaugeMetricFamily(
                "imageshare_sqs_messages", "Messages in the SQS queues by state", labels=["queue", "state"]
            )
            for label in ("work", "extras", "dead_letter"):
                for state in ("visible", "in_flight", "delayed"):
                    g.add_metric([label, state], depth[label][state])
            yield g
        images = GaugeMetricFamily("imageshare_images", "Images by status", labels=["status"])
        for status, n in _images_by_status().items():
            images.add_metric([status], n)
        yield images
        # Stranded uploads (imageshare/console/stranded.py): pending past
        # STRANDED_AFTER_SECONDS now (normally 0: the duties queue them again
        # within a minute), and how many were queued again so far.
        stranded = GaugeMetricFamily(
            "imageshare_images_stranded", "Pending images queued longer ago than STRANDED_AFTER_SECONDS"
        )
        stranded.add_metric([], stranded_images().count())
        yield stranded
        redispatched = CounterMetricFamily(
            "imageshare_stranded_redispatched", "Stranded pending images queued again by the periodic duties"
        )
        redispatched.add_metric([], redispatched_total())
        yield redispatched


class MetricsView(_OpsView):
    """Prometheus exposition of the same figures."""

    renderer_classes = [JSONRenderer, PlainTextRenderer]

    def perform_content_negotiation(self, request, force=False):
        # The exposition format is fixed: a ?format= (or an odd Accept) changes nothing, never a 404.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(parameters=[OpenApiParameter("format", exclude=True)])
    def get(self, request):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector())
        return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")


class PolicyForm(forms.ModelForm):
    class Meta:
        model = ScalingPolicy
        fields = [
            "policy", "enabled", "min_workers", "max_workers", "worker_concurrency", "target_latency_seconds",
            "default_task_seconds", "scale_in_stable_seconds", "scale_in_cooldown", "scale_in_headroom",
            "cpu_high", "cpu_low", "grow_ratio", "shrink_ratio", "interval_seconds",
        ]  # fmt: skip


def _pool_state():
    """The pool as the hook sees it, or an explanation of why it cannot be read from here."""
    from imageshare.console.pool import make_provider

    try:
        return make_provider().state(), None
    except Exception as exc:  # the page must render even when the pool cannot be read
        return None, str(exc)


@staff_member_required
def ops_page(request):
    policy = ScalingPolicy.current()
    if request.method == "POST":
        form = PolicyForm(request.POST, instance=policy)
        if form.is_valid():
            form.save()
            messages.success(request, "Scaling policy saved; the hook applies it on its next tick.")
            return redirect("ops")
        messages.error(request, "The policy was not saved: see the errors below.")
    else:
        form = PolicyForm(instance=policy)
    depth, error = _depth_or_error()
    pool, pool_error = _pool_state()
    return render(
        request,
        "console/index.html",
        {
            "depth": depth,
            "error": error,
            "images": _images_by_status(),
            "flower_url": settings.FLOWER_URL,
            "form": form,
            "pool": pool,
            "pool_error": pool_error,
            "decisions": ScalingDecision.objects.all()[:30],
            "retryable": retryable_images().count(),
            "retry_batch": RETRY_BATCH,
            "stranded": {
                "now": stranded_images().count(),
                "after_minutes": round(settings.STRANDED_AFTER_SECONDS / 60),
                "redispatched": redispatched_total(),
                "last": last_redispatch(),
            },
        },
        status=400 if request.method == "POST" else 200,
    )


RETRY_BATCH = 500  # per click: bounded, so one request never runs for minutes


@staff_member_required
@require_http_methods(["POST"])
def retry_failed(request):
    """Queue again the failed images a retry can cure (dead-lettered, crashed, timed out), oldest first."""
    retried = 0
    for image in retryable_images().order_by("created_at")[:RETRY_BATCH]:
        try:
            retry_image(image)
        except ImageshareError as exc:
            messages.error(request, f"Stopped after {retried} image(s): {exc.message}")
            break
        retried += 1
    else:
        messages.success(request, f"Queued {retried} failed image(s) again.")
    return redirect("ops")
