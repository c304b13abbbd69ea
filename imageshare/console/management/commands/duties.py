from django.conf import settings
from django.core.management.base import BaseCommand

from imageshare.console.autoscaler import Autoscaler
from imageshare.console.duties import STRANDED_SWEEP_SECONDS, Duty, dead_letter_sweep, run_duties, stranded_sweep
from imageshare.console.models import ScalingPolicy
from imageshare.console.pool import make_provider
from imageshare.images.orphans import sweep_orphans
from ops.deploy.clients import client
from ops.process import StopOnSignal


def _aws(service: str):
    return client(service, endpoint_url=settings.AWS_ENDPOINT_URL, region=settings.AWS_REGION)


class Command(BaseCommand):
    help = (
        "Run the periodic duties (the scaling hook, the dead-letter, stranded-upload and orphaned-object sweeps); "
        "one process at a time holds them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", default=settings.SCALING_PROVIDER, choices=["local", "asg"])
        parser.add_argument("--once", action="store_true", help="run each duty once, then exit")

    def handle(self, *args, provider, once, **options):
        hook = Autoscaler(make_provider(provider), cloudwatch=_aws("cloudwatch"))
        sqs = _aws("sqs")
        duties = [
            Duty("scaling", lambda: ScalingPolicy.current().interval_seconds, hook.tick),  # logs its decision
            Duty("dead-letter sweep", lambda: settings.DEAD_LETTER_SWEEP_SECONDS, lambda: dead_letter_sweep(sqs)),
            Duty("stranded uploads", lambda: STRANDED_SWEEP_SECONDS, stranded_sweep),
            Duty("orphaned objects", lambda: settings.ORPHAN_SWEEP_SECONDS, sweep_orphans),
        ]
        self.stdout.write(f"periodic duties running with the {provider} provider")
        run_duties(duties, StopOnSignal(), once=once)
