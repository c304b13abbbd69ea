from dataclasses import fields

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ops.scaling.policy import POLICIES, Settings

# The defaults live in one place: the pure policy's settings.
_DEFAULTS = Settings()


class ScalingPolicy(models.Model):
    """The scaling hook's settings: one row, read on every tick (no restart needed)."""

    policy = models.CharField(max_length=16, choices=[(p, p) for p in POLICIES], default=_DEFAULTS.policy)
    enabled = models.BooleanField(default=True, help_text="Off: the hook observes and records, but does not act.")
    min_workers = models.PositiveSmallIntegerField(default=_DEFAULTS.min_workers)
    max_workers = models.PositiveSmallIntegerField(default=_DEFAULTS.max_workers)
    worker_concurrency = models.PositiveSmallIntegerField(default=_DEFAULTS.worker_concurrency)
    target_latency_seconds = models.FloatField(
        default=_DEFAULTS.target_latency_seconds, help_text="Acceptable time an upload waits in the queue."
    )
    default_task_seconds = models.FloatField(
        default=_DEFAULTS.default_task_seconds, help_text="Used until a processing time is measured."
    )
    scale_in_stable_seconds = models.FloatField(default=_DEFAULTS.scale_in_stable_seconds)
    scale_in_cooldown = models.FloatField(default=_DEFAULTS.scale_in_cooldown)
    scale_in_headroom = models.FloatField(default=_DEFAULTS.scale_in_headroom)
    cpu_high = models.FloatField(default=_DEFAULTS.cpu_high)
    cpu_low = models.FloatField(default=_DEFAULTS.cpu_low)
    grow_ratio = models.FloatField(default=_DEFAULTS.grow_ratio)
    shrink_ratio = models.FloatField(default=_DEFAULTS.shrink_ratio)
    interval_seconds = models.FloatField(default=_DEFAULTS.interval_seconds)
    # Manual mode: an operator set the pool's size on the console (grow, shrink,
    # stop). The hook then holds the pool at ``manual_desired`` and the policy
    # does not act, until an operator hands the pool back (automatic).
    manual = models.BooleanField(default=False, help_text="On: the hook holds the pool at manual_desired.")
    manual_desired = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "scaling policy"

    def __str__(self):
        return f"{self.policy} {self.min_workers}..{self.max_workers}"

    @classmethod
    def current(cls) -> "ScalingPolicy":
        return cls.objects.get_or_create(pk=1, defaults=settings.SCALING_DEFAULTS)[0]

    def to_settings(self) -> Settings:
        return Settings(**{f.name: getattr(self, f.name) for f in fields(Settings)})

    def clean(self):
        try:
            self.to_settings()
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class ScalingDecision(models.Model):
    """One tick of the hook: what it saw, what it wanted, what it did."""

    class Action(models.TextChoices):
        OUT = "out"
        IN = "in"
        HOLD = "hold"
        SKIP = "skip"  # a metric could not be read: no scaling on garbage
        OFF = "off"  # hook disabled: observed only

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    at = models.FloatField(help_text="wall-clock seconds, as the policy saw them")
    provider = models.CharField(max_length=32)
    action = models.CharField(max_length=8, choices=Action.choices)
    visible = models.IntegerField(null=True)
    in_flight = models.IntegerField(null=True)
    dead_letter = models.IntegerField(null=True)  # visible messages in the dead-letter queue
    running = models.IntegerField(null=True)
    starting = models.IntegerField(null=True)
    avg_task_seconds = models.FloatField(null=True)
    cpu = models.FloatField(null=True)
    previous = models.IntegerField(null=True)
    desired = models.IntegerField(null=True)
    reason = models.TextField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.created_at:%H:%M:%S} {self.action} {self.previous}->{self.desired}"


class Lease(models.Model):
    """Who runs a singleton job (the periodic duties) and until when: see ``duties.hold_lease``."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name}: {self.holder} until {self.expires_at:%H:%M:%S}"


class AuditEntry(models.Model):
    """One operator action on the console: who, what, when (and what came of it)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150)  # kept when the account is deleted
    action = models.CharField(max_length=32)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username} {self.action}"
