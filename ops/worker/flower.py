"""Start Flower on the events channel, always behind basic auth.

    python -m ops.worker.flower [--port 5555] [--address 127.0.0.1]

Reads CELERY_EVENTS_URL (the Redis the workers send events to) and
FLOWER_BASIC_AUTH ("user:password"). Flower is started with the events Redis
as its broker: it only listens to events; the tasks stay on SQS.
"""

import argparse
import os
import sys

DEFAULT_LOCAL_AUTH = "admin:"  # never accepted: a password must be given


def flower_command(events_url: str, basic_auth: str, address: str, port: int) -> list[str]:
    user, _, password = basic_auth.partition(":")
    if not user or len(password) < 8:
        raise SystemExit("FLOWER_BASIC_AUTH must be 'user:password' with a password of 8+ characters")
    return [
        sys.executable, "-m", "celery", "-A", "imageshare", "--broker", events_url,
        "flower", f"--address={address}", f"--port={port}", f"--basic-auth={basic_auth}",
        "--persistent=False", "--purge_offline_workers=300", "--inspect_timeout=500",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FLOWER_PORT", 5555)))
    args = parser.parse_args()
    events_url = os.environ.get("CELERY_EVENTS_URL")
    if not events_url:
        raise SystemExit("CELERY_EVENTS_URL is not set: Flower has no events to show")
    cmd = flower_command(events_url, os.environ.get("FLOWER_BASIC_AUTH", DEFAULT_LOCAL_AUTH), args.address, args.port)
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    main()
