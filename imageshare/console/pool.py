"""The worker pool as the scaling hook and the console see it: the provider the settings choose."""

from __future__ import annotations

from django.conf import settings

from ops.deploy.clients import client

from .models import ScalingPolicy


def make_provider(kind: str | None = None, *, details: bool = False):
    """The pool's provider: ``local`` worker processes, or the EC2 Auto Scaling group ``ASG_NAME``.

    ``details``: the console's view, which also reads each instance's host and
    launch time (one more EC2 call per read; the scaling hook does without).
    """
    kind = kind or settings.SCALING_PROVIDER
    if kind == "asg":
        from ops.scaling.providers import AutoScalingGroupProvider

        if not settings.ASG_NAME:
            raise SystemExit("SCALING_PROVIDER=asg needs ASG_NAME")
        return AutoScalingGroupProvider(
            settings.ASG_NAME,
            client("autoscaling", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION),
            client("cloudwatch", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION),
            client("ec2", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION) if details else None,
        )
    import os

    from ops.scaling.providers import LocalProvider
    from ops.worker.command import worker_command

    concurrency = ScalingPolicy.current().worker_concurrency
    return LocalProvider(
        settings.VAR_DIR / "workers",
        lambda name: worker_command(f"{settings.SQS_QUEUE_NAME},{settings.SQS_EXTRAS_QUEUE_NAME}", concurrency, name),
        # The local workers inherit this process's environment (the stack's settings), as any child would.
        dict(os.environ),
        concurrency,
    )
