"""The embedded local stack: everything on one machine, on loopback.

Over 400 lines on purpose: the order of starting and stopping the processes is
one concern, and reads best in one place (terminal, pid file and log following
live beside it in terminal.py, runfile.py and follow.py).

``python -m ops.devstack run`` (what ``make run`` calls):
1. stops what an earlier run left running (``var/stack.pid``, see runfile.py);
2. starts moto in server mode as the local AWS (S3, SQS, SNS, Auto Scaling,
   CloudWatch) and creates the bucket and the queues (work queue + DLQ);
3. applies migrations to the database (a SQLite file by default) and creates
   the admin account, printing its password once;
4. starts the scaling hook (which starts the workers), Flower and the web
   tier under gunicorn;
5. prints the URLs and credentials once, then only what a person acts on
   (pool size changes, errors, failed images: follow.py); every process
   logs to a file under the var dir;
6. on Ctrl-C, SIGTERM, SIGHUP or a closed output pipe, stops everything in
   order within ``STOP_WITHIN`` seconds (then SIGKILL for what is left).

Process groups, deliberately: each child runs in its own session, so a
Ctrl-C reaches only this supervisor, which stops the children in order (the
workers before moto) and sends each one signal once. Were they in the
terminal's foreground group, each would get the Ctrl-C at the same moment
and stop its own way, in no order (gunicorn's SIGINT is its quick shutdown;
moto could go before the workers finish). So that nothing outlives the
supervisor even when it cannot stop them (SIGKILL, a crash), every child
asks the kernel for SIGTERM when its parent dies
(``ops.process.die_with_parent``), the hook's workers too; and a ``finally``
plus an ``atexit`` hook kill every child's session.

The integration tests start the same ``Stack`` on free ports.
"""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ops.devstack.follow import LogFollower
from ops.devstack.runfile import RunFile, stop_leftovers
from ops.devstack.terminal import Terminal
from ops.process import StopOnSignal, die_with_parent, signal_session, spawn, stat_fields
from ops.worker.command import worker_command

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STOP_WITHIN = 8.5  # seconds from the stop signal until every child is gone (SIGKILL at the end)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TICK = 0.25  # the supervisor's loop: signals, the output pipe, the children, the logs
OUTPUT_GONE = "its output is gone (the terminal closed, or the pipe's reader exited)"


class Interrupted(Exception):
    """A stop was asked for while the stack was still starting."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_until(
    predicate,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    interrupted: Callable[[], bool] = lambda: False,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if interrupted():
            raise Interrupted(what)
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
        say: Callable[[str], None] | None = None,
        run_file: RunFile | None = None,
    ):
        from imageshare import settings as s

        self.var_dir = Path(var_dir)
        self.web_port = web_port
        self.aws_port = aws_port
        self.workers = workers
        self.concurrency = concurrency
        self.quiet = quiet  # kept for callers: every process logs to a file under var_dir anyway
        self.say = say or (lambda text: None)
        self.run_file = run_file  # var/stack.pid, kept current by the supervisor
        self.interrupted: Callable[[], bool] = lambda: False  # set by the supervisor: a stop was asked for
        self.procs: dict[str, subprocess.Popen] = {}
        self.specs: dict[str, tuple[list[str], dict[str, str], str]] = {}  # name -> (argv, env, log name)
        self.restarts: dict[str, int] = {}
        self.stopped = False
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
            **os.environ,  # passed through to the children, whose settings read it
            "DJANGO_SETTINGS_MODULE": "imageshare.settings",
            "PYTHONUNBUFFERED": "1",
            "IMAGESHARE_VAR_DIR": str(self.var_dir),
            "AWS_ENDPOINT_URL": f"http://{HOST}:{aws_port}",
            # moto accepts any credentials; these keep real ones out of the local stack.
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": s.AWS_REGION,
            "AWS_DEFAULT_REGION": s.AWS_REGION,
        }
        self.env.pop("AWS_SESSION_TOKEN", None)
        self.env.pop("AWS_PROFILE", None)
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.env.setdefault("WORKER_CONCURRENCY", str(concurrency))
        if self.events:
            self.env["CELERY_EVENTS_URL"] = f"redis://{HOST}:{self.redis_port}/0"
            if not self.env.get("FLOWER_BASIC_AUTH"):
                self.env["FLOWER_BASIC_AUTH"] = f"admin:{secrets.token_urlsafe(12)}"
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

    # -- logs ---------------------------------------------------------------
    # Every process logs to a file: the terminal shows only what follow.py picks.
    LOG_NAMES = {"web": "web.log", "autoscale": "autoscale.log"}  # the rest: NAME.log

    def log_path(self, name: str) -> Path:
        return self.var_dir / self.LOG_NAMES.get(name, f"{name}.log")

    def follower(self) -> LogFollower:
        """The log files whose notable lines reach the terminal (from their current end)."""
        files = {name: self.log_path(name) for name in ("autoscale", "web", "flower")}
        return LogFollower(files, [(self.var_dir / "workers", "*.log"), (self.var_dir, "worker*.log")])

    # -- processes ----------------------------------------------------------
    def _record(self) -> None:
        if self.run_file is not None:
            live = {name: p.pid for name, p in self.procs.items() if p.returncode is None}
            self.run_file.write(os.getpid(), live)

    def _spawn(
        self, name: str, args: list[str], env: dict[str, str] | None = None, log: str | None = None
    ) -> subprocess.Popen:
        # Own session: Ctrl-C reaches only this supervisor, which then stops
        # the children in the right order instead of all at once; and the
        # kernel stops the child should the supervisor die (die_with_parent).
        env = env or self.env
        log = log or name
        proc = spawn(args, env, self.log_path(log), cwd=ROOT)
        self.procs[name] = proc
        self.specs[name] = (list(args), env, log)
        self._record()
        return proc

    def _manage(self, *args: str) -> str:
        """Run a management command to its end (output captured); stop it at once when a stop is asked for."""
        proc = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        while True:
            try:
                out, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if self.interrupted():
                    signal_session(proc.pid, sig=signal.SIGKILL)
                    proc.communicate()
                    raise Interrupted(f"manage.py {args[0]}")
        if proc.returncode != 0:
            last = (err or out).strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {last[0]}")
        return out

    def _wait_for(self, name: str, predicate, timeout: float, what: str) -> None:
        what = f"{what} (its log: {self.log_path(name)})"
        wait_until(predicate, timeout, what, self.procs[name], self.interrupted)

    def start_aws(self) -> None:
        """1. moto server. 2. Bucket and queues, with the queue URL for the workers."""
        from imageshare import settings as s  # the same defaults the app reads
        from ops.deploy.clients import client, ensure_bucket, ensure_queues

        self._spawn("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.aws_port)])
        self._wait_for("moto", lambda: port_open(self.aws_port), 30, "moto server")
        endpoint = self.env["AWS_ENDPOINT_URL"]
        region = self.env["AWS_REGION"]
        bucket = self.env.get("S3_BUCKET", s.S3_BUCKET)
        queue = self.env.get("SQS_QUEUE_NAME", s.SQS_QUEUE_NAME)
        # The upload page POSTs files straight to the bucket (direct uploads): its origins may.
        web_origins = [f"http://{host}:{self.web_port}" for host in (HOST, "localhost")]
        ensure_bucket(client("s3", endpoint_url=endpoint, region=region), bucket, region, cors_origins=web_origins)
        queue_url, dlq_url = ensure_queues(
            client("sqs", endpoint_url=endpoint, region=region),
            queue,
            self.env.get("SQS_DEAD_LETTER_QUEUE_NAME", f"{queue}-dlq"),
            visibility_timeout=int(self.env.get("SQS_VISIBILITY_TIMEOUT", s.SQS_VISIBILITY_TIMEOUT)),
            max_receive_count=int(self.env.get("SQS_MAX_RECEIVE_COUNT", s.SQS_MAX_RECEIVE_COUNT)),
        )
        self.env["SQS_QUEUE_URL"] = queue_url
        self.env["SQS_DEAD_LETTER_QUEUE_URL"] = dlq_url
        extras = self.env.get("SQS_EXTRAS_QUEUE_NAME", f"{queue}-extras")
        self.env["SQS_EXTRAS_QUEUE_URL"], _ = ensure_queues(
            client("sqs", endpoint_url=endpoint, region=region),
            extras,
            self.env.get("SQS_DEAD_LETTER_QUEUE_NAME", f"{queue}-dlq"),
            visibility_timeout=int(self.env.get("SQS_VISIBILITY_TIMEOUT", s.SQS_VISIBILITY_TIMEOUT)),
            max_receive_count=int(self.env.get("SQS_MAX_RECEIVE_COUNT", s.SQS_MAX_RECEIVE_COUNT)),
        )
        # Faces and masks: a queue of its own, consumed by its own worker (start_workers).
        self.env["SQS_ANALYSIS_QUEUE_URL"], _ = ensure_queues(
            client("sqs", endpoint_url=endpoint, region=region),
            self.analysis_queue,
            self.env.get("SQS_DEAD_LETTER_QUEUE_NAME", f"{queue}-dlq"),
            visibility_timeout=int(self.env.get("SQS_VISIBILITY_TIMEOUT", s.SQS_VISIBILITY_TIMEOUT)),
            max_receive_count=int(self.env.get("SQS_MAX_RECEIVE_COUNT", s.SQS_MAX_RECEIVE_COUNT)),
        )

    def prepare_db(self) -> str:
        self._manage("migrate", "--noinput")
        self._manage("collectstatic", "--noinput", "--verbosity", "0")
        lost = self._manage("mark_lost_images").strip()
        if lost:
            self.say(lost)
        return self._manage("ensure_admin").strip()

    def start_web(self) -> None:
        # Access lines to access.log; gunicorn's own log and Django's (stderr) to web.log.
        self._spawn(
            "web",
            [
                sys.executable, "-m", "gunicorn", "imageshare.wsgi",
                "--bind", f"{HOST}:{self.web_port}",
                "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                "--timeout", "60", "--graceful-timeout", "20",
                # Bounded memory: `make soak` measured the web processes' RSS growing
                # ~34 MB/min at 3.4 uploads/s (about 170 KB a request); each worker is replaced after this many
                # requests (jittered, so the two never restart together).
                "--max-requests", "500", "--max-requests-jitter", "100",
                "--access-logfile", str(self.var_dir / "access.log"),
                "--error-logfile", str(self.log_path("web")),
                # gunicorn 23+ opens a control socket in ~/.gunicorn by default: one per
                # user, shared by every stack and test run on the machine. Not used here.
                "--no-control-socket",
            ],
        )  # fmt: skip
        self._wait_for("web", lambda: port_open(self.web_port), 30, "gunicorn")

    def worker_command(self, index: int) -> list[str]:
        from imageshare import settings as s  # the same defaults the app reads

        queue = self.env.get("SQS_QUEUE_NAME", s.SQS_QUEUE_NAME)
        extras = self.env.get("SQS_EXTRAS_QUEUE_NAME", f"{queue}-extras")
        return worker_command(f"{queue},{extras}", self.concurrency, f"local{index}")

    @property
    def analysis_queue(self) -> str:
        from imageshare import settings as s  # the same defaults the app reads

        queue = self.env.get("SQS_QUEUE_NAME", s.SQS_QUEUE_NAME)
        return self.env.get("SQS_ANALYSIS_QUEUE_NAME", f"{queue}-analysis")

    def start_workers(self) -> None:
        # The analysis worker: one process of its own on the analysis queue, so a slow
        # model never takes a resize worker's slot (docs/analysis.md); the scaling hook leaves it be.
        self._spawn("worker-analysis", worker_command(self.analysis_queue, 1, "analysis"))
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
        self._spawn(name, self.worker_command(index), {**self.env, "IMAGESHARE_WORKER_READY_FILE": str(ready)})
        self._wait_for(name, ready.exists, timeout, name)
        return name

    def local_pool(self):
        """The hook's view of the local workers (same files, same rules)."""
        from ops.scaling.providers import LocalProvider

        return LocalProvider(self.var_dir / "workers", None, self.env, self.concurrency)

    def start_redis(self) -> None:
        """A private Redis for the monitoring events: loopback only, nothing on disk."""
        self._spawn(
            "redis",
            [
                "redis-server", "--bind", HOST, "--port", str(self.redis_port),
                "--save", "", "--appendonly", "no", "--dir", str(self.var_dir),
            ],
        )  # fmt: skip
        self._wait_for("redis", lambda: port_open(self.redis_port), 15, "redis-server")

    def start_flower(self) -> None:
        # The same entry point as production; the credentials travel in the environment, not argv.
        self._spawn(
            "flower",
            [sys.executable, "-m", "ops.worker.flower", "--address", HOST, "--port", str(self.flower_port)],
        )
        self._wait_for("flower", lambda: port_open(self.flower_port), 30, "flower")

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

    # -- stopping -----------------------------------------------------------
    def _running(self, names) -> list[str]:
        return [n for n in names if n in self.procs and self.procs[n].poll() is None]

    def _signal(self, names, sig: int) -> None:
        for name in self._running(names):
            try:
                self._send(name, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _send(self, name: str, sig: int) -> None:
        """A signal to a process's group, but SIGTERM to a Celery worker's main process only:
        that is its warm shutdown (the pool finishes the tasks in hand). SIGTERM to its
        pool processes too would kill those tasks mid-run (WorkerLostError)."""
        pid = self.procs[name].pid
        if sig == signal.SIGTERM and name.startswith("worker"):
            os.kill(pid, sig)
        else:
            os.killpg(pid, sig)

    def _wait(self, names, until: float) -> None:
        while self._running(names) and time.monotonic() < until:
            time.sleep(0.05)

    def stop_process(self, name: str, timeout: float = 30) -> None:
        """Stop one process: SIGTERM (a worker's warm shutdown), SIGKILL after ``timeout``."""
        proc = self.procs[name]
        if proc.poll() is None:
            self._send(name, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._record()

    def restart_process(self, name: str) -> None:
        """Start a stopped process again with the same command (used by failure tests)."""
        args, env, log = self.specs[name]
        self._spawn(name, args, env, log)
        if name == "redis":
            wait_until(lambda: port_open(self.redis_port), 15, "redis-server", self.procs[name])

    def stop(self, within: float = STOP_WITHIN) -> float:
        """Stop everything in order, each process signalled once; all gone within ``within`` s. Returns the time taken.

        1. SIGTERM to the scaling hook, the workers (Celery's warm shutdown:
           the task in hand finishes, the open SQS poll settles), web and
           Flower. A worker the hook starts in its last tick dies with the
           hook (its workers get SIGTERM when it ends) or in step 3.
        2. redis and moto once the workers are gone, or at 60% of the time:
           moto's queues die with it anyway, and its end also ends a
           worker's open long poll (up to 10 s otherwise).
        3. SIGKILL for whatever is left, sessions and all, the hook's workers too.
        """
        started = time.monotonic()
        if self.stopped:
            return 0.0
        deadline = started + within
        fixed = [n for n in self.procs if n.startswith("worker")]
        self._signal(["autoscale", *fixed, "web", "flower"], signal.SIGTERM)
        if self.autoscale:
            # Warm-stops the hook's workers (their hook's end signals them too); SIGKILL at the bound.
            self.local_pool().stop_all(max(0.0, started + within * 0.6 - time.monotonic()))
        self._wait(fixed, started + within * 0.6)
        self._signal(["redis", "moto"], signal.SIGTERM)
        self._wait(list(self.procs), deadline)
        self.kill_all()
        self.stopped = True
        return time.monotonic() - started

    def _kill(self, names) -> None:
        """SIGKILL each child's whole session (its own descendants too), then reap the child."""
        procs = [self.procs[n] for n in names if n in self.procs]
        # Once reaped, the child's pid (its session's id) may name another
        # process: then the session is no longer ours to kill.
        sids = [p.pid for p in procs if p.poll() is None or stat_fields(p.pid) is None]
        if sids:
            signal_session(*sids, sig=signal.SIGKILL)
        for proc in procs:
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                pass

    def kill_all(self) -> None:
        """The last resort (also run at exit): SIGKILL every child's session and the hook's workers."""
        if self.stopped:
            return
        self._kill(list(self.procs))
        if self.autoscale:
            pool = self.local_pool()
            if pool.state().members:
                pool.stop_all(0)
        self._record()

    # Monitoring and the scaling hook are restartable: if one dies the stack
    # carries on (the workers keep working) and the supervisor restarts it;
    # anything else dying stops the stack.
    OPTIONAL = ("redis", "flower", "autoscale")

    def check_alive(self) -> str | None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            log = self.log_path(name)
            if name in self.OPTIONAL:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                if self.restarts[name] > 5:
                    del self.procs[name]
                    self.say(f"{name} keeps exiting; left stopped (work is not affected; its log: {log})")
                    continue
                self.say(
                    f"{name} exited with code {proc.returncode}; restarting it (work is not affected; its log: {log})"
                )
                try:
                    self.restart_process(name)
                except RuntimeError as exc:
                    self.say(f"could not restart {name}: {exc}")
                continue
            return f"{name} exited with code {proc.returncode} (its log: {log})"
        return None


def banner(stack: Stack, admin_line: str) -> str:
    v = stack.var_dir
    flower = (
        f"  Flower     {stack.flower_url}/  user:password {stack.env['FLOWER_BASIC_AUTH']}\n"
        if stack.events
        else "  Flower     off (no redis-server on this machine for the events channel)\n"
    )
    return (
        "\n"
        "imageshare is running (local stack, loopback only)\n"
        f"  site       {stack.web_url}/\n"
        f"  admin      {stack.web_url}/admin/  {admin_line}\n"
        f"  API        {stack.web_url}/api/v1/images\n"
        f"  ops page   {stack.web_url}/ops/  (staff: pool, scaling decisions, queue depth)\n"
        + flower
        + f"  local AWS  {stack.env['AWS_ENDPOINT_URL']}  (moto: S3 and SQS in memory, empty at each start)\n"
        f"  logs       {v}/\n"
        "             web.log (errors), access.log, autoscale.log (every scaling decision),\n"
        "             workers/*.log, flower.log, moto.log, redis.log, stack.log (this terminal)\n"
        "From here on: worker count changes, errors and failed images only. Ctrl-C stops everything.\n"
    )


def main(argv=None) -> int:
    # First: from here on a stop signal only sets a flag (no KeyboardInterrupt anywhere).
    stopping = StopOnSignal(STOP_SIGNALS)
    from imageshare import settings as s

    parser = argparse.ArgumentParser(prog="python -m ops.devstack", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the whole local stack in the foreground")
    run.add_argument("--web-port", type=int, default=s.LOCAL_WEB_PORT)
    run.add_argument("--aws-port", type=int, default=s.LOCAL_AWS_PORT)
    run.add_argument("--workers", type=int, default=s.LOCAL_WORKERS)
    run.add_argument("--concurrency", type=int, default=s.SCALING_DEFAULTS["worker_concurrency"])
    run.add_argument("--redis-port", type=int, default=s.LOCAL_REDIS_PORT)
    run.add_argument("--flower-port", type=int, default=s.LOCAL_FLOWER_PORT)
    args = parser.parse_args(argv)

    var_dir = Path(s.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    term = Terminal(var_dir / "stack.log")
    run_file = RunFile(var_dir / "stack.pid")
    other = run_file.running_supervisor()
    if other is not None:
        term.say(f"A local stack already runs from {var_dir} (pid {other}): stop it first (Ctrl-C, or: kill {other})")
        return 2
    left = stop_leftovers(run_file, var_dir / "workers")
    if left:
        term.say(f"Stopped what an earlier run left running (it did not stop cleanly): {', '.join(left)}.")
    run_file.write(os.getpid(), {})  # from now on a second start finds this one
    for port in (args.web_port, args.aws_port, args.redis_port, args.flower_port):
        if port_open(port):
            term.say(
                f"Port {port} on {HOST} is in use; set WEB_PORT / AWS_PORT / REDIS_PORT / FLOWER_PORT to free ports."
            )
            return 2
    stack = Stack(
        var_dir=var_dir,
        web_port=args.web_port,
        aws_port=args.aws_port,
        workers=args.workers,
        concurrency=args.concurrency,
        redis_port=args.redis_port,
        flower_port=args.flower_port,
        say=term.say,
        run_file=run_file,
    )
    stack.interrupted = lambda: bool(stopping) or term.gone()
    atexit.register(stack.kill_all)  # should anything below fail to stop them
    follower = stack.follower()
    reason, code = "", 0
    try:
        term.say(f"Starting the local stack (logs in {var_dir}/)...")
        admin_line = stack.start()
        term.say(banner(stack, admin_line))
        while not reason:
            for line in follower.poll():
                term.say(line)
            if stopping:
                reason = signal.Signals(stopping.signum).name
            elif term.gone():
                reason = OUTPUT_GONE
            else:
                problem = stack.check_alive()
                if problem:
                    reason, code = problem, 1
                else:
                    time.sleep(TICK)
    except Interrupted:
        reason = signal.Signals(stopping.signum).name if stopping else OUTPUT_GONE
    except Exception as exc:  # one line here, the traceback in stack.log
        term.keep(traceback.format_exc())
        reason, code = f"{type(exc).__name__}: {exc} (traceback in {var_dir / 'stack.log'})", 1
    finally:
        term.say(f"Stopping the local stack: {reason or 'exiting'}")
        took = stack.stop()
        for line in follower.poll():
            term.say(line)
        run_file.remove()
        term.say(f"Stopped: every process of the stack is gone ({took:.1f}s).")
    return code


if __name__ == "__main__":
    sys.exit(main())
