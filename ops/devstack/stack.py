"""The embedded local stack: everything on one machine, on loopback.

``python -m ops.devstack run`` (what ``make run`` calls):
1. starts moto in server mode as the local AWS (S3, SQS, SNS, Auto Scaling,
   CloudWatch) and creates the bucket and the queues (work queue + DLQ);
2. applies migrations to the database (a SQLite file by default) and creates
   the admin account, printing its password once;
3. starts the web tier under gunicorn and the Celery worker(s);
4. prints the URLs, waits, and on Ctrl-C stops everything in reverse order
   (workers get a warm shutdown: they finish the task in hand).

The integration tests start the same ``Stack`` on free ports.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ops.process import StopOnSignal
from ops.worker.command import worker_command

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with code {proc.returncode}")
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s")


class Stack:
    """The processes of the local stack, with the environment they share."""

    def __init__(
        self,
        *,
        var_dir: Path,
        web_port: int,
        aws_port: int,
        workers: int = 1,
        concurrency: int = 2,
        database_url: str | None = None,
        extra_env: dict[str, str] | None = None,
        quiet: bool = False,
        events: bool | None = None,
        autoscale: bool = True,
        redis_port: int | None = None,
        flower_port: int | None = None,
    ):
        self.var_dir = Path(var_dir)
        self.web_port = web_port
        self.aws_port = aws_port
        self.workers = workers
        self.concurrency = concurrency
        self.quiet = quiet
        self.procs: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, int] = {}
        # With the scaling hook, the hook owns the workers (LocalProvider);
        # without it, the stack starts ``workers`` fixed ones.
        self.autoscale = autoscale
        # Monitoring (Flower) needs a Redis for the worker events; without
        # redis-server on the machine the stack runs without it.
        self.events = shutil.which("redis-server") is not None if events is None else events
        self.redis_port = redis_port or free_port()
        self.flower_port = flower_port or free_port()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "imageshare.settings",
            "PYTHONUNBUFFERED": "1",
            "IMAGESHARE_VAR_DIR": str(self.var_dir),
            "AWS_ENDPOINT_URL": f"http://{HOST}:{aws_port}",
            # moto accepts any credentials; these keep real ones out of the local stack.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        }
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.env.pop("AWS_PROFILE", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.setdefault("WORKER_CONCURRENCY", str(concurrency))
        if self.events:
            self.env["CELERY_EVENTS_URL"] = f"redis://{HOST}:{self.redis_port}/0"
            self.env.setdefault("FLOWER_BASIC_AUTH", f"admin:{secrets.token_urlsafe(12)}")
            self.env.setdefault("FLOWER_URL", f"http://{HOST}:{self.flower_port}/")
        else:
            self.env.pop("CELERY_EVENTS_URL", None)
        self.env.update(extra_env or {})

    @property
    def web_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    @property
    def flower_url(self) -> str:
        return f"http://{HOST}:{self.flower_port}"

    # Their access logs (a line per SQS long poll) would push everything
    # useful off the terminal within a minute: always to files.
    FILE_LOGGED = ("moto", "redis")

    def _log(self, name: str):
        if self.quiet or name in self.FILE_LOGGED:
            return open(self.var_dir / f"{name}.log", "ab")
        return None  # inherit the terminal

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        # Own session: Ctrl-C reaches only this supervisor, which then stops
        # the children in the right order instead of all at once.
        log = self._log(name)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,
        )
        if log is not None:
            log.close()  # the child has its own copy
        self.procs[name] = proc
        return proc

    def _manage(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        )
        return out.stdout

    def start_aws(self) -> None:
        """1. moto server. 2. Bucket and queues, with the queue URL for the workers."""
        from imageshare import settings as s  # the same defaults the app reads
        from ops.deploy.clients import client, ensure_bucket, ensure_queues

        proc = self._spawn("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.aws_port)])
        wait_until(lambda: port_open(self.aws_port), 30, "moto server", proc)
        endpoint = self.env["AWS_ENDPOINT_URL"]
        region = self.env["AWS_REGION"]
        bucket = self.env.get("S3_BUCKET", s.S3_BUCKET)
        queue = self.env.get("SQS_QUEUE_NAME", s.SQS_QUEUE_NAME)
        ensure_bucket(client("s3", endpoint_url=endpoint, region=region), bucket, region)
        queue_url, dlq_url = ensure_queues(
            client("sqs", endpoint_url=endpoint, region=region),
            queue,
            self.env.get("SQS_DEAD_LETTER_QUEUE_NAME", f"{queue}-dlq"),
            visibility_timeout=int(self.env.get("SQS_VISIBILITY_TIMEOUT", s.SQS_VISIBILITY_TIMEOUT)),
            max_receive_count=int(self.env.get("SQS_MAX_RECEIVE_COUNT", s.SQS_MAX_RECEIVE_COUNT)),
        )
        self.env["SQS_QUEUE_URL"] = queue_url
        self.env["SQS_DEAD_LETTER_QUEUE_URL"] = dlq_url

    def prepare_db(self) -> str:
        self._manage("migrate", "--noinput")
        self._manage("collectstatic", "--noinput", "--verbosity", "0")
        lost = self._manage("mark_lost_images").strip()
        if lost:
            print(lost, flush=True)
        return self._manage("ensure_admin").strip()

    def start_web(self) -> None:
        proc = self._spawn(
            "web",
            [
                sys.executable, "-m", "gunicorn", "imageshare.wsgi",
                "--bind", f"{HOST}:{self.web_port}",
                "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                "--timeout", "60", "--graceful-timeout", "20",
                "--access-logfile", "-",
            ],
        )  # fmt: skip
        wait_until(lambda: port_open(self.web_port), 30, "gunicorn", proc)

    def worker_command(self, index: int) -> list[str]:
        return worker_command(
            self.env.get("SQS_QUEUE_NAME", "imageshare-thumbnails"), self.concurrency, f"local{index}"
        )

    def start_workers(self) -> None:
        if self.autoscale:
            # The hook reads the pool (none yet) and brings it to the minimum.
            self._spawn("autoscale", [sys.executable, "manage.py", "duties", "--provider", "local"])
            return
        for i in range(1, self.workers + 1):
            self._spawn(f"worker{i}", self.worker_command(i))

    def add_worker(self, index: int, timeout: float = 60) -> str:
        """Start one more fixed worker, wait until it consumes, and return its name."""
        name = f"worker{index}"
        ready = self.var_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        proc = self._spawn(name, self.worker_command(index), {**self.env, "IMAGESHARE_WORKER_READY_FILE": str(ready)})
        wait_until(ready.exists, timeout, name, proc)
        return name

    def local_pool(self):
        """The hook's view of the local workers (same files, same rules)."""
        from ops.scaling.providers import LocalProvider

        return LocalProvider(self.var_dir / "workers", None, self.env, self.concurrency)

    def start_redis(self) -> None:
        """A private Redis for the monitoring events: loopback only, nothing on disk."""
        proc = self._spawn(
            "redis",
            [
                "redis-server", "--bind", HOST, "--port", str(self.redis_port),
                "--save", "", "--appendonly", "no", "--dir", str(self.var_dir),
            ],
        )  # fmt: skip
        wait_until(lambda: port_open(self.redis_port), 15, "redis-server", proc)

    def start_flower(self) -> None:
        from ops.worker.flower import flower_command

        cmd = flower_command(self.env["CELERY_EVENTS_URL"], self.env["FLOWER_BASIC_AUTH"], HOST, self.flower_port)
        proc = self._spawn("flower", cmd)
        wait_until(lambda: port_open(self.flower_port), 30, "flower", proc)

    def start(self) -> str:
        self.start_aws()
        if self.events:
            self.start_redis()
        admin_line = self.prepare_db()
        self.start_workers()
        if self.events:
            self.start_flower()
        self.start_web()
        return admin_line

    def stop_process(self, name: str, timeout: float = 30) -> None:
        """Stop one process: SIGTERM (a worker's warm shutdown), SIGKILL after ``timeout``."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def restart_process(self, name: str) -> None:
        """Start a stopped process again with the same command (used by failure tests)."""
        self._spawn(name, self.procs[name].args)
        if name == "redis":
            wait_until(lambda: port_open(self.redis_port), 15, "redis-server", self.procs[name])

    def stop(self, timeout: float = 30) -> None:
        """Stop in reverse order: the hook, workers (warm shutdown), flower and web, then redis and moto."""
        if "autoscale" in self.procs:
            self.stop_process("autoscale", timeout)
            self.local_pool().stop_all(timeout)
        first = [n for n in self.procs if n.startswith("worker")] + [n for n in ("flower", "web") if n in self.procs]
        last = [n for n in ("redis", "moto") if n in self.procs]
        for group in (first, last):  # moto last, after everyone who talks to it
            for name in group:
                if self.procs[name].poll() is None:
                    os.killpg(self.procs[name].pid, signal.SIGTERM)
            for name in group:
                self.stop_process(name, timeout)

    # Monitoring and the scaling hook are restartable: if one dies the stack
    # carries on (the workers keep working) and the supervisor restarts it;
    # anything else dying stops the stack.
    OPTIONAL = ("redis", "flower", "autoscale")

    def check_alive(self) -> str | None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            if name in self.OPTIONAL:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                if self.restarts[name] > 5:
                    del self.procs[name]
                    print(f"{name} keeps exiting; left stopped (work is not affected)", flush=True)
                    continue
                print(f"{name} exited with code {proc.returncode}; restarting it (work is not affected)", flush=True)
                try:
                    self.restart_process(name)
                except RuntimeError as exc:
                    print(f"could not restart {name}: {exc}", flush=True)
                continue
            return f"{name} exited with code {proc.returncode}"
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.devstack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole local stack in the foreground")
    run.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT", 8000)))
    run.add_argument("--aws-port", type=int, default=int(os.environ.get("AWS_PORT", 4566)))
    run.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", 1)))
    run.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", 2)))
    run.add_argument("--redis-port", type=int, default=int(os.environ.get("REDIS_PORT", 6390)))
    run.add_argument("--flower-port", type=int, default=int(os.environ.get("FLOWER_PORT", 5555)))
    args = parser.parse_args(argv)

    for port in (args.web_port, args.aws_port, args.redis_port, args.flower_port):
        if port_open(port):
            print(
                f"Port {port} on {HOST} is in use; set WEB_PORT / AWS_PORT / REDIS_PORT / FLOWER_PORT to free ports.",
                file=sys.stderr,
            )
            return 2
    stack = Stack(
        var_dir=Path(os.environ.get("IMAGESHARE_VAR_DIR", ROOT / "var")),
        web_port=args.web_port,
        aws_port=args.aws_port,
        workers=args.workers,
        concurrency=args.concurrency,
        redis_port=args.redis_port,
        flower_port=args.flower_port,
    )
    stopping = StopOnSignal()
    try:
        admin_line = stack.start()
        print(
            "\n"
            "imageshare is running (local stack, loopback only)\n"
            f"  site:        {stack.web_url}/\n"
            f"  admin:       {stack.web_url}/admin/\n"
            f"  API:         {stack.web_url}/api/v1/images\n"
            + (
                f"  Flower:      {stack.flower_url}/ (user:password {stack.env['FLOWER_BASIC_AUTH']})\n"
                if stack.events
                else "  Flower:      off (no redis-server on this machine for the events channel)\n"
            )
            + f"  ops page:    {stack.web_url}/ops/ (staff: pool, scaling decisions, queue depth)\n"
            + "  workers:     managed by the scaling hook (local processes)\n"
            f"  local AWS:   {stack.env['AWS_ENDPOINT_URL']} (moto; its log: {stack.var_dir / 'moto.log'})\n"
            f"  {admin_line}\n"
            "  Note: moto keeps S3 and SQS in memory: images from an earlier run lose their files on restart.\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            problem = stack.check_alive()
            if problem:
                print(f"Stopping: {problem}", file=sys.stderr)
                break
            time.sleep(2)
    finally:
        print("Stopping the local stack...", flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
