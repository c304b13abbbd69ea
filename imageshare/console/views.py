"""Operator endpoints: queue depth as JSON and as Prometheus metrics, the console page, its controls and its data.

The page (``ops_page``) is rendered once; ``console.js`` then refreshes the
pool, the workers, the queues and the charts every 10 s from
``/ops/metrics.json`` (``MetricsJsonView``). The controls are plain POST
forms (CSRF, staff only), each recorded in the audit list (``controls``).
"""

from __future__ import annotations

import hmac
import logging
import time

from botocore.exceptions import BotoCoreError, ClientError
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import AnonymousUser
from django.db.models import Count
from django.http import Http404, HttpResponse
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

from . import controls
from .decisions import recent_lines
from .models import AuditEntry, ScalingPolicy
from .queues import queue_depth
from .series import chart_data
from .stranded import last_redispatch, redispatched_total, stranded_images
from .workers import flower_activity, flower_enabled, worker_rows

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
            for label in ("work", "extras", "analysis", "dead_letter"):
                for state in ("visible", "in_flight", "delayed"):
                    g.add_metric([label, state], depth[label][state])
            yield g
        pool, _ = _pool_state()
        if pool is not None:  # the same figures as the console's worker count
            workers = GaugeMetricFamily("imageshare_workers", "Workers in the pool by state", labels=["state"])
            for state in ("running", "starting", "stopping"):
                workers.add_metric([state], getattr(pool, state))
            yield workers
        manual = GaugeMetricFamily("imageshare_scaling_manual", "1 while an operator holds the pool's size")
        manual.add_metric([], 1 if ScalingPolicy.current().manual else 0)
        yield manual
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


def _pool_state(details: bool = False):
    """The pool as the hook sees it, or an explanation of why it cannot be read from here."""
    from imageshare.console.pool import make_provider

    try:
        return make_provider(details=details).state(), None
    except Exception as exc:  # the page must render even when the pool cannot be read
        return None, str(exc)


def _mode(policy: ScalingPolicy) -> dict:
    last = AuditEntry.objects.filter(action__in=["grow", "shrink", "stop"]).first() if policy.manual else None
    return {
        "manual": policy.manual,
        "desired": policy.manual_desired if policy.manual else None,
        "by": last.username if last else None,
        "since": last.created_at.isoformat() if last else None,
        "policy": policy.policy,
        "min": policy.min_workers,
        "max": policy.max_workers,
        "enabled": policy.enabled,
    }


def _pool_dict(pool, pool_error) -> dict:
    if pool is None:
        return {"error": pool_error}
    return {
        "provider": settings.SCALING_PROVIDER,
        "running": pool.running,
        "starting": pool.starting,
        "stopping": pool.stopping,
        "cpu": pool.cpu,
        "bounds": pool.bounds,
        "error": None,
    }


def snapshot() -> dict:
    """The live state the page shows and ``console.js`` refreshes: mode, pool, workers, queues, images."""
    pool, pool_error = _pool_state(details=True)
    depth, error = _depth_or_error()
    activity = flower_activity()
    return {
        "at": time.time(),
        "mode": _mode(ScalingPolicy.current()),
        "pool": _pool_dict(pool, pool_error),
        "workers": worker_rows(pool, activity=activity),
        "workers_measured": activity is not None,
        "queues": depth,
        "queues_error": error,
        "images": _images_by_status(),
        "retryable": retryable_images().count(),
        "decisions": [line.as_dict() for line in recent_lines()],
    }


class MetricsJsonView(_OpsView):
    """The console's live data and its charts (the last 30 minutes, 1-minute points)."""

    def get(self, request):
        return Response({**snapshot(), "charts": chart_data()})


def _site_url(request) -> str:
    return settings.SITE_URL or request.build_absolute_uri("/")


def _save_policy(request, policy: ScalingPolicy):
    """The policy form: saved (and audited) and redirected, or the form with its errors."""
    form = PolicyForm(request.POST, instance=policy)
    if form.is_valid():
        form.save()
        changed = ", ".join(f"{name}={form.cleaned_data[name]}" for name in form.changed_data) or "no change"
        controls.audit(request.user, "policy", changed)
        messages.success(request, "Scaling policy saved; the hook applies it on its next tick.")
        return None
    messages.error(request, "The policy was not saved: see the errors below.")
    return form


@staff_member_required
def ops_page(request):
    policy = ScalingPolicy.current()
    form = PolicyForm(instance=policy)
    if request.method == "POST":
        form = _save_policy(request, policy)
        if form is None:
            return redirect("ops")
    live = snapshot()
    return render(
        request,
        "console/index.html",
        {
            "live": live,
            "depth": live["queues"],
            "error": live["queues_error"],
            "images": live["images"],
            "flower_url": settings.FLOWER_URL,
            "flower_measured": flower_enabled(),
            "site_url": _site_url(request),
            "form": form,
            "pool": live["pool"] if not live["pool"]["error"] else None,
            "pool_error": live["pool"]["error"],
            "mode": live["mode"],
            "workers": live["workers"],
            "decisions": live["decisions"],
            "audit": AuditEntry.objects.all()[:20],
            "confirm_phrase": controls.CONFIRM_DELETE,
            "retryable": live["retryable"],
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
    controls.audit(request.user, "retry failed", f"{retried} image(s) queued again")
    return redirect("ops")


def _say(request, outcome: controls.Outcome):
    (messages.success if outcome.ok else messages.error)(request, outcome.message)
    return redirect("ops")


POOL_CONTROLS = {
    "grow": lambda user, pool: controls.grow(user, pool),
    "shrink": lambda user, pool: controls.shrink(user, pool),
    "stop": lambda user, pool: controls.stop(user, pool),
    "automatic": lambda user, pool: controls.automatic(user),
}


@staff_member_required
@require_http_methods(["POST"])
def pool_control(request, action: str):
    """Grow or shrink by one, stop (manual mode), or hand the pool back to the policy (automatic)."""
    if action not in POOL_CONTROLS:
        raise Http404
    pool, _ = _pool_state()
    return _say(request, POOL_CONTROLS[action](request.user, pool))


@staff_member_required
@require_http_methods(["POST"])
def redrive_dead_letters(request):
    try:
        outcome = controls.redrive_dead_letters(request.user)
    except (BotoCoreError, ClientError) as exc:
        outcome = controls.Outcome(False, f"SQS cannot be reached: {exc}")
    return _say(request, outcome)


@staff_member_required
@require_http_methods(["POST"])
def delete_everything(request):
    try:
        outcome = controls.delete_everything(request.user, request.POST.get("confirm", ""))
    except (BotoCoreError, ClientError) as exc:
        outcome = controls.Outcome(False, f"Stopped: S3 cannot be reached ({exc}); run it again.")
    return _say(request, outcome)
