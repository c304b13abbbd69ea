"""Where workers come from: local processes, or an EC2 Auto Scaling group.

A provider reports the pool as it is (``state``) and moves it towards a size
(``set_desired``). Both read the real state every time instead of
remembering it: a restarted hook rebuilds its view from the pool itself (the
EC2 group's instances stay; local workers leave with the hook that started
them, and the new hook starts fresh ones).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops.process import spawn, start_time, stat_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerInfo:
    """One member of the pool, as the provider sees it (what the console lists)."""

    id: str  # the local worker's name, or the EC2 instance id
    state: str  # "starting", "in service", "stopping" (draining: finishing the tasks in hand), or the provider's own
    host: str = ""  # where it runs: this machine, or the instance's private DNS name ("" when unknown)
    started_at: float | None = None  # epoch seconds: the process's start, or the instance's launch
    pid: int | None = None  # local workers only
    detail: str = ""  # the provider's own word for the state (the EC2 lifecycle state)


@dataclass(frozen=True)
class PoolState:
    running: int  # ready and consuming
    starting: int  # booting: counts as capacity
    stopping: int  # told to go, finishing the task in hand
    cpu: float | None  # average CPU use per running worker, 0..1; None when unknown
    members: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None  # the provider's own (min, max), e.g. the group's
    workers: tuple[WorkerInfo, ...] = ()  # one per member, in the order of ``members``

    def clamp(self, desired: int) -> int:
        return desired if self.bounds is None else min(max(desired, self.bounds[0]), self.bounds[1])

    @property
    def capacity(self) -> int:
        return self.running + self.starting


class LocalProvider:
    """Workers as ``celery worker`` processes on this machine.

    Each worker has files in ``pid_dir``: ``NAME.pid`` (its pid), ``NAME.ready``
    (touched by the worker itself on Celery's ``worker_ready`` signal) and
    ``NAME.stopping`` (we asked it to go). A restarted hook finds the pool
    from these files and the live processes. Scale-in sends SIGTERM: Celery's
    warm shutdown, which stops taking messages and finishes the tasks in hand.

    A worker never outlives the hook that started it: when the hook's process
    ends, however it ends, the kernel sends its workers SIGTERM (the same warm
    shutdown; ``ops.process.die_with_parent``), so nothing is left running
    once the local stack is gone, even a SIGKILLed one. A restarted hook sees
    those workers leave and starts new ones as the policy says.
    """

    name = "local"

    def __init__(
        self,
        pid_dir: Path,
        command_for: Callable[[str], list[str]] | None,
        env: dict[str, str],
        concurrency: int,
    ) -> None:
        self.pid_dir = Path(pid_dir)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.command_for = command_for  # name -> argv; None: a read-only view that never starts workers
        self.env = env
        self.concurrency = concurrency
        self._cpu_seen: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, at)
        self._started: dict[int, str | None] = {}  # pid -> start time, from the pid files

    # -- reading ------------------------------------------------------------
    def _workers(self) -> list[tuple[str, int]]:
        found = []
        for pid_file in sorted(self.pid_dir.glob("*.pid")):
            name = pid_file.stem
            try:
                pid, started = _read_pid_file(pid_file)
            except (OSError, ValueError):
                continue
            if _is_worker(pid, started):
                found.append((name, pid))
                self._started[pid] = started
            else:  # gone: clean up after it
                for suffix in (".pid", ".ready", ".stopping"):
                    (self.pid_dir / f"{name}{suffix}").unlink(missing_ok=True)
        return found

    def state(self) -> PoolState:
        running = starting = stopping = 0
        cpus = []
        members = []
        workers = []
        host = socket.gethostname()
        for name, pid in self._workers():
            members.append(name)
            if (self.pid_dir / f"{name}.stopping").exists():
                stopping += 1
                word = "stopping"
            elif (self.pid_dir / f"{name}.ready").exists():
                running += 1
                word = "in service"
                share = self._cpu_share(pid)
                if share is not None:
                    cpus.append(share)
            else:
                starting += 1
                word = "starting"
            workers.append(WorkerInfo(name, word, host, _started_epoch(self._started.get(pid)), pid))
        cpu = sum(cpus) / len(cpus) if cpus and len(cpus) == running else None
        return PoolState(running, starting, stopping, cpu, tuple(members), workers=tuple(workers))

    def _cpu_share(self, pid: int) -> float | None:
        """CPU used by the worker and its pool processes since the last reading, per pool slot."""
        total = _tree_cpu_seconds(pid)
        now = time.monotonic()
        before = self._cpu_seen.get(pid)
        self._cpu_seen[pid] = (total, now)
        if before is None or now - before[1] <= 0:
            return None
        return min(1.0, (total - before[0]) / ((now - before[1]) * self.concurrency))

    # -- acting -------------------------------------------------------------
    def set_desired(self, desired: int) -> None:
        workers = self._workers()
        active = [(n, p) for n, p in workers if not (self.pid_dir / f"{n}.stopping").exists()]
        if desired > len(active):
            taken = {n for n, _ in workers}
            for _ in range(desired - len(active)):
                self._start(_next_name(taken))
        elif desired < len(active):
            # Booting workers first (they hold no work), then the newest.
            order = sorted(active, key=lambda w: ((self.pid_dir / f"{w[0]}.ready").exists(), -w[1]))
            for name, pid in order[: len(active) - desired]:
                (self.pid_dir / f"{name}.stopping").touch()
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                log.info("asked local worker %s (pid %s) to stop after its current tasks", name, pid)

    def _start(self, name: str) -> None:
        env = {**self.env, "IMAGESHARE_WORKER_READY_FILE": str(self.pid_dir / f"{name}.ready")}
        assert self.command_for is not None, "this LocalProvider was made without a command"
        # Own session: a Ctrl-C meant for the hook's terminal does not reach
        # the worker (the hook stops it: scale-in). It dies with the hook.
        proc = spawn(self.command_for(name), env, self.pid_dir / f"{name}.log")
        # The pid with the process's start time: together they name this
        # process and no later one that reuses the pid.
        (self.pid_dir / f"{name}.pid").write_text(f"{proc.pid} {_start_time(proc.pid)}")
        log.info("started local worker %s (pid %s)", name, proc.pid)

    def stop_all(self, timeout: float = 30) -> None:
        """Warm-stop every worker and wait (bounded); used when the local stack stops."""
        workers = self._workers()
        for name, pid in workers:
            (self.pid_dir / f"{name}.stopping").touch()
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_is_worker(p, self._started.get(p)) for _, p in workers):
            time.sleep(0.2)
        for _, pid in workers:
            if _is_worker(pid, self._started.get(pid)):
                os.killpg(pid, signal.SIGKILL)
        self._workers()  # clean up the files


def _next_name(taken: set[str]) -> str:
    i = 1
    while f"worker{i}" in taken:
        i += 1
    taken.add(f"worker{i}")
    return f"worker{i}"


def _start_time(pid: int) -> str:
    return start_time(pid) or "?"


def _started_epoch(ticks: str | None) -> float | None:
    """A process's start (clock ticks since boot, from /proc/PID/stat) as epoch seconds; None if unknown."""
    if not ticks or ticks == "?":
        return None
    try:
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK")


def _read_pid_file(path: Path) -> tuple[int, str | None]:
    parts = path.read_text().split()
    return int(parts[0]), (parts[1] if len(parts) > 1 else None)


def _is_worker(pid: int, started: str | None = None) -> bool:
    """Is ``pid`` still the worker we started?

    By start time when recorded: the command line is not reliable just after
    ``Popen`` returns, because the kernel closes the close-on-exec pipe Popen
    waits on before it installs the new argv, so /proc/PID/cmdline can still
    show the parent's for a moment (seen here in about one start in fifteen).
    Pid files without a start time fall back to the command line.
    """
    fields = stat_fields(pid)
    if fields is None or fields[0] == "Z":  # gone, or exited and not yet reaped
        return False
    if started is not None and started != "?":
        return fields[19] == started
    try:
        return b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its direct children (the prefork pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        this_pid = int(stat_path.parent.name)
        ppid = int(parts[1])
        if this_pid == pid or ppid == pid:
            total += (int(parts[11]) + int(parts[12])) / tick
    return total


class AutoScalingGroupProvider:
    """Workers as instances of an EC2 Auto Scaling group.

    ``set_desired`` sets the group's desired capacity within the group's own
    bounds. Busy instances are kept from being chosen for scale-in by the
    workers themselves (``ops.worker.protection``: scale-in protection while
    a task runs), and the group's termination lifecycle hook gives a draining
    worker time to finish.
    """

    name = "asg"
    PENDING = ("Pending", "Pending:Wait", "Pending:Proceed", "Warmed:Pending")

    def __init__(self, group: str, autoscaling: Any, cloudwatch: Any = None, ec2: Any = None) -> None:
        self.group = group
        self.autoscaling = autoscaling
        self.cloudwatch = cloudwatch
        self.ec2 = ec2  # given: ``state`` also reads each instance's host and launch time (the console's view)

    def _describe(self) -> dict[str, Any]:
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        if not groups["AutoScalingGroups"]:
            raise LookupError(f"no Auto Scaling group {self.group!r}")
        return groups["AutoScalingGroups"][0]

    def state(self) -> PoolState:
        g = self._describe()
        running = [i for i in g["Instances"] if i["LifecycleState"] == "InService"]
        starting = [i for i in g["Instances"] if i["LifecycleState"] in self.PENDING]
        stopping = [i for i in g["Instances"] if i["LifecycleState"].startswith("Terminating")]
        # Instances the group has yet to launch count as starting capacity.
        missing = max(0, g["DesiredCapacity"] - len(running) - len(starting))
        return PoolState(
            running=len(running),
            starting=len(starting) + missing,
            stopping=len(stopping),
            cpu=self._cpu(),
            members=tuple(i["InstanceId"] for i in g["Instances"]),
            bounds=(g["MinSize"], g["MaxSize"]),
            workers=self._worker_info(g["Instances"]),
        )

    def _state_word(self, lifecycle: str) -> str:
        if lifecycle == "InService":
            return "in service"
        if lifecycle in self.PENDING:
            return "starting"
        if lifecycle.startswith("Terminating"):
            return "stopping"
        return lifecycle.lower()

    def _worker_info(self, instances: list[dict[str, Any]]) -> tuple[WorkerInfo, ...]:
        details: dict[str, dict[str, Any]] = {}
        ids = [i["InstanceId"] for i in instances]
        if self.ec2 is not None and ids:
            try:
                for r in self.ec2.describe_instances(InstanceIds=ids)["Reservations"]:
                    details.update({i["InstanceId"]: i for i in r["Instances"]})
            except Exception as exc:  # the host and uptime are extras: the pool's state stands without them
                log.warning("could not describe the instances of %s: %s", self.group, exc)
        workers = []
        for i in instances:
            d = details.get(i["InstanceId"], {})
            launched = d.get("LaunchTime")
            workers.append(
                WorkerInfo(
                    i["InstanceId"],
                    self._state_word(i["LifecycleState"]),
                    d.get("PrivateDnsName", ""),
                    launched.timestamp() if launched else None,
                    detail=i["LifecycleState"],
                )
            )
        return tuple(workers)

    def _cpu(self) -> float | None:
        if self.cloudwatch is None:
            return None
        now = datetime.now(UTC)
        stats = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/EC2",
            MetricName="CPUUtilization",
            Dimensions=[{"Name": "AutoScalingGroupName", "Value": self.group}],
            StartTime=now - timedelta(minutes=5),
            EndTime=now,
            Period=60,
            Statistics=["Average"],
        )["Datapoints"]
        if not stats:
            return None
        latest = max(stats, key=lambda d: d["Timestamp"])
        return latest["Average"] / 100

    def set_desired(self, desired: int) -> None:
        g = self._describe()
        value = min(max(desired, g["MinSize"]), g["MaxSize"])
        self.autoscaling.set_desired_capacity(
            AutoScalingGroupName=self.group, DesiredCapacity=value, HonorCooldown=False
        )
        log.info("set desired capacity of %s to %s", self.group, value)
