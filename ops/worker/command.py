"""The worker command line: one definition for production's systemd unit, the scaling hook and the local stack."""

from __future__ import annotations

import sys


def worker_command(queues: str, concurrency: int, name: str) -> list[str]:
    """The worker command line: the local stack, the scaling hook and production's systemd unit run this.

    ``queues`` is Celery's comma-separated list: the main queue and the extra
    sizes' queue, which kombu's SQS transport polls side by side.
    """
    return [
        sys.executable, "-m", "celery", "-A", "imageshare", "worker",
        "--queues", queues, "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--loglevel", "INFO",
        # Gossip and mingle need broadcast on the broker, which SQS lacks.
        # (Heartbeats are events: they go to the events channel, if any.)
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
