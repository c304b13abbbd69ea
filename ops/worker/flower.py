"""Start Flower on the events channel, always behind basic auth.

    python -m ops.worker.flower [--port 5555] [--address 127.0.0.1]

Settings (from the environment, via imageshare.settings): CELERY_EVENTS_URL
(the Redis the workers send events to), FLOWER_BASIC_AUTH ("user:password";
refused without a password of 8+ characters) and FLOWER_PORT. Flower is
started with the events Redis as its broker: it only listens to events; the
tasks stay on SQS.

The credentials never go on the command line (any local user can read a
command line in ``ps``): Flower reads ``FLOWER_BASIC_AUTH`` from its
environment itself (flower 2.2: ``apply_env_options`` turns every
``FLOWER_<OPTION>`` variable into that option), and a process's environment
is readable only by its owner.

Flower runs in this process, with one change: SIGTERM and SIGINT stop its
event loop instead of raising SystemExit (Flower's own SIGTERM handler) or
KeyboardInterrupt wherever the main thread happens to be. Raised inside one
of the loop's coroutines, that exception is stored on the task as well, and
asyncio later logs the task as "exception was never retrieved", with a
traceback ending in ``SystemExit: 0``. Stopping the loop ends Flower the
same way, cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys

MIN_PASSWORD = 8


def check_basic_auth(basic_auth: str) -> None:
    """Refuse anything but 'user:password' with a real password (Flower would start open without it)."""
    user, _, password = basic_auth.partition(":")
    if not user or len(password) < MIN_PASSWORD:
        raise SystemExit(f"FLOWER_BASIC_AUTH must be 'user:password' with a password of {MIN_PASSWORD}+ characters")
    if "," in basic_auth:  # Flower splits the option on commas (several users)
        raise SystemExit("FLOWER_BASIC_AUTH must hold one 'user:password' without commas")


def flower_argv(events_url: str, address: str, port: int) -> list[str]:
    """Celery's command line for Flower (no secrets in it: the auth comes from the environment)."""
    return [
        "celery", "-A", "imageshare", "--broker", events_url,
        "flower", f"--address={address}", f"--port={port}",
        "--persistent=False", "--purge_offline_workers=300", "--inspect_timeout=500",
    ]  # fmt: skip


def _stop_loop(signum, frame) -> None:
    """Stop Flower's event loop from a signal: Flower then returns and the process exits 0."""
    from tornado.ioloop import IOLoop

    loop = IOLoop.current().asyncio_loop
    loop.call_soon_threadsafe(loop.stop)  # safe from a signal handler; run at once if the loop runs, else first


def run(events_url: str, address: str, port: int) -> int:
    import flower.command
    from celery.bin.celery import main as celery_main

    # Flower installs flower.command.sigterm_handler (sys.exit) for SIGTERM when it starts.
    flower.command.sigterm_handler = _stop_loop
    signal.signal(signal.SIGINT, _stop_loop)
    signal.signal(signal.SIGTERM, _stop_loop)
    sys.argv = flower_argv(events_url, address, port)
    try:
        return celery_main() or 0
    except SystemExit as exc:  # click ends with sys.exit
        return exc.code if isinstance(exc.code, int) else 0


def main() -> None:
    from imageshare import settings as s

    parser = argparse.ArgumentParser(prog="python -m ops.worker.flower")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=s.LOCAL_FLOWER_PORT)
    args = parser.parse_args()
    if not s.CELERY_EVENTS_URL:
        raise SystemExit("CELERY_EVENTS_URL is not set: Flower has no events to show")
    check_basic_auth(s.FLOWER_BASIC_AUTH)  # Flower itself reads it from the same environment variable
    sys.exit(run(s.CELERY_EVENTS_URL, args.address, args.port))


if __name__ == "__main__":
    main()
