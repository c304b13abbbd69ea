"""A real local stack for the integration tests: moto's server, gunicorn and
real ``celery worker`` processes, on free loopback ports."""

import contextlib
import os
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from ops.devstack.stack import Stack, free_port

ADMIN_PASSWORD = "integration-admin-pass"
# /metrics answers a scraper that sends "Authorization: Bearer <this>".
METRICS_TOKEN = "integration-metrics-token"


def _fresh_postgres_url(url: str, name: str) -> str:
    """Recreate database ``name`` on the server of ``url`` and return its URL."""
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextlib.contextmanager
def own_stack(tmp_path_factory, name: str, password: str, **options):
    """A stack of a test module's own (its own ports, SQLite file and settings), stopped afterwards.

    For tests that change the stack's settings or kill its parts; the rest
    share the session's ``stack``.
    """
    var_dir = tmp_path_factory.mktemp(name)
    extra_env = {"IMAGESHARE_ADMIN_PASSWORD": password, **options.pop("extra_env", {})}
    s = Stack(
        var_dir=var_dir,
        web_port=free_port(),
        aws_port=free_port(),
        database_url=f"sqlite:///{var_dir / 'stack.sqlite3'}",
        quiet=True,
        extra_env=extra_env,
        **options,
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("stack")
    database_url = os.environ.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        database_url = _fresh_postgres_url(database_url, "imageshare_integration")
    else:
        database_url = f"sqlite:///{var_dir / 'stack.sqlite3'}"
    s = Stack(
        var_dir=var_dir,
        web_port=free_port(),
        aws_port=free_port(),
        workers=1,
        concurrency=2,
        autoscale=False,  # one fixed worker: the scaling tests start their own stack
        database_url=database_url,
        extra_env={
            "IMAGESHARE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SQS_MAX_RECEIVE_COUNT": "3",
            "METRICS_TOKEN": METRICS_TOKEN,
            # Fuzzed URLs never leave this machine: no DNS lookup, no connection but to loopback.
            "REMOTE_FETCH_LOOPBACK_ONLY": "true",
        },
        quiet=True,
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()
        for log in sorted(var_dir.glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name} (tail) ---\n{text[-4000:]}")


@pytest.fixture
def api(stack):
    session = requests.Session()
    session.auth = ("admin", ADMIN_PASSWORD)
    session.headers["Accept"] = "application/json"
    session.base = stack.web_url
    return session


@pytest.fixture(scope="session")
def admin_token(stack) -> str:
    """The admin's API token (``POST /api/v1/token``), for clients that would pay an Argon2 hash per request."""
    resp = requests.post(
        f"{stack.web_url}/api/v1/token", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=30
    )
    if resp.status_code != 200:  # not an assert: an xfail(raises=AssertionError) must not swallow it
        pytest.fail(f"POST /api/v1/token as admin: {resp.status_code} {resp.text[:300]}")
    return resp.json()["token"]


def wait_for_status(api, image_id: str, timeout: float = 90) -> dict:
    """Poll the API (bounded) until the image leaves 'pending'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"{api.base}/api/v1/images/{image_id}", timeout=10).json()
        if body["status"] != "pending":
            return body
        time.sleep(0.25)
    raise AssertionError(f"image {image_id} still pending after {timeout}s")
