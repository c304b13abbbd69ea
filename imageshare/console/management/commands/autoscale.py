import os
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from imageshare.console.autoscaler import Autoscaler
from imageshare.console.models import ScalingPolicy
from ops.deploy.clients import client
from ops.process import StopOnSignal


def make_provider(kind: str):
    if kind == "asg":
        from ops.scaling.providers import AutoScalingGroupProvider

        group = os.environ.get("ASG_NAME")
        if not group:
            raise SystemExit("SCALING_PROVIDER=asg needs ASG_NAME")
        return AutoScalingGroupProvider(
            group,
            client("autoscaling", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION),
            client("cloudwatch", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION),
        )
    from ops.scaling.providers import LocalProvider
    from ops.worker.command import worker_command

    concurrency = ScalingPolicy.current().worker_concurrency
    return LocalProvider(
        settings.VAR_DIR / "workers",
        lambda name: worker_command(settings.SQS_QUEUE_NAME, concurrency, name),
        dict(os.environ),
        concurrency,
    )


class Command(BaseCommand):
    help = "Run the scaling hook: grow and shrink the worker pool from the queue length."

    def add_arguments(self, parser):
        parser.add_argument("--provider", default=os.environ.get("SCALING_PROVIDER", "local"), choices=["local", "asg"])
        parser.add_argument("--once", action="store_true", help="one tick, then exit")

    def handle(self, *args, provider, once, **options):
        cloudwatch = client("cloudwatch", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)
        sqs = client("sqs", endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)
        hook = Autoscaler(make_provider(provider), cloudwatch=cloudwatch, sqs=sqs)
        stopping = StopOnSignal()
        self.stdout.write(f"scaling hook running with the {provider} provider")
        while not stopping:
            started = time.monotonic()
            hook.tick()  # logs its decision
            if once:
                break
            # Sleep in small steps so a stop signal is honoured quickly.
            interval = ScalingPolicy.current().interval_seconds
            while not stopping and time.monotonic() - started < interval:
                time.sleep(0.2)
