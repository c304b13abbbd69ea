"""What the stack benchmarks share: a quiet local stack and an API session on it."""

import contextlib
import tempfile
from pathlib import Path

import requests

from ops.devstack.stack import Stack, free_port

PASSWORD = "bench-pass"


@contextlib.contextmanager
def local_stack(**options):
    """Start a quiet local stack on free loopback ports; yield (stack, authenticated API session)."""
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(
            var_dir=Path(tmp),
            web_port=free_port(),
            aws_port=free_port(),
            extra_env={"IMAGESHARE_ADMIN_PASSWORD": PASSWORD},
            quiet=True,
            **options,
        )
        stack.start()
        try:
            session = requests.Session()
            session.auth = ("admin", PASSWORD)
            session.headers["Accept"] = "application/json"
            yield stack, session
        finally:
            stack.stop()
