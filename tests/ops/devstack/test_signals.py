"""The local stack stops like a service: every way it can be told to stop leaves nothing running.

Each test starts ``python -m ops.devstack run`` as ``make run 2>&1 | cat``
would: its stdout and stderr are a pipe read by a ``cat`` process. The
processes of the stack are collected from /proc before the stop (the
supervisor's descendants by parent pid, plus every member of their
sessions), each with its start time so a reused pid is never mistaken for
one of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.devstack.stack import ROOT, free_port
from ops.process import is_running, stat_fields

# Its own stack, on SQLite whatever DATABASE_URL says: run once, in the SQLite pass.
pytestmark = [pytest.mark.integration, pytest.mark.ownstack]

START_TIMEOUT = 90  # a start takes 15-30 s on a shared 2-core machine
GONE_WITHIN = 10


@dataclass
class Run:
    supervisor: subprocess.Popen
    reader: subprocess.Popen  # the `cat` reading the supervisor's output
    output: Path  # what the reader wrote: the terminal
    var_dir: Path
    ports: dict[str, int]

    def terminal(self) -> str:
        return self.output.read_text(errors="replace")

    def stack_log(self) -> str:
        path = self.var_dir / "stack.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def explain(self) -> str:
        return f"--- terminal ---\n{self.terminal()[-3000:]}\n--- stack.log ---\n{self.stack_log()[-3000:]}"


def new_ports() -> dict[str, int]:
    return {name: free_port() for name in ("WEB_PORT", "AWS_PORT", "REDIS_PORT", "FLOWER_PORT")}


def start(var_dir: Path, ports: dict[str, int], name: str = "run") -> Run:
    """``make run 2>&1 | cat``: the supervisor and its reader in one process group, as a shell pipeline is."""
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "IMAGESHARE_VAR_DIR": str(var_dir),
        "IMAGESHARE_ADMIN_PASSWORD": "signals-admin-pass",
        "DATABASE_URL": f"sqlite:///{var_dir / 'stack.sqlite3'}",
    }
    output = var_dir.parent / f"{var_dir.name}-{name}-terminal.txt"
    read_end, write_end = os.pipe()
    with open(output, "wb") as out:
        # A group of their own, like a shell's job; Ctrl-C kills `cat` even if this test runs with SIGINT ignored.
        reader = subprocess.Popen(
            ["cat"],
            stdin=read_end,
            stdout=out,
            process_group=0,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "ops.devstack", "run"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=write_end,
        process_group=reader.pid,
    )
    os.close(read_end)
    os.close(write_end)
    return Run(supervisor, reader, output, var_dir, ports)


def healthy(run: Run) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{run.ports['WEB_PORT']}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until_up(run: Run) -> None:
    """This run printed its banner, the web answers /healthz, and the hook's first worker consumes (bounded)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert run.supervisor.poll() is None, f"the stack exited with {run.supervisor.returncode}\n{run.explain()}"
        up = "imageshare is running" in run.terminal() and healthy(run)
        if up and list((run.var_dir / "workers").glob("*.ready")):
            return
        time.sleep(0.5)
    raise AssertionError(f"the stack was not up after {START_TIMEOUT}s\n{run.explain()}")


def processes_of(root: int) -> dict[int, str]:
    """pid -> start time of ``root``'s descendants and of every member of their sessions."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields:
                table[int(entry.name)] = (int(fields[1]), int(fields[3]), fields[19])  # ppid, session, start
    found = {root}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        more |= {pid for pid, (_, sid, _) in table.items() if sid in found and sid != table[root][1]} - found
        found |= more
        grew = bool(more)
    found.discard(root)
    return {pid: table[pid][2] for pid in found if pid in table}


def alive(procs: dict[int, str]) -> list[int]:
    return [pid for pid, started in procs.items() if is_running(pid, started)]


def wait_gone(procs: dict[int, str], timeout: float) -> float:
    """Seconds until none of ``procs`` runs; AssertionError after ``timeout``."""
    started = time.monotonic()
    while alive(procs):
        if time.monotonic() - started > timeout:
            left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in alive(procs)}
            raise AssertionError(f"still running after {timeout}s: {left}")
        time.sleep(0.05)
    return time.monotonic() - started


def cleanup(procs: dict[int, str], *runs: Run) -> None:
    """Whatever a failed test left: SIGKILL, so the next test starts clean."""
    for pid in alive(procs):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for run in runs:
        for proc in (run.supervisor, run.reader):
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def tracebacks(run: Run) -> list[str]:
    """Where a traceback shows: the terminal, the supervisor's log, Flower's log."""
    texts = {"terminal": run.terminal(), "stack.log": run.stack_log()}
    flower = run.var_dir / "flower.log"
    if flower.exists():
        texts["flower.log"] = flower.read_text(errors="replace")
    return [name for name, text in texts.items() if "Traceback" in text]


def ctrl_c(run: Run) -> None:
    # The terminal sends SIGINT to its foreground group: the supervisor and `cat` alike,
    # so the supervisor also loses its output at the same moment.
    os.killpg(run.reader.pid, signal.SIGINT)


WAYS = {
    "ctrl-c (SIGINT to the pipeline)": ctrl_c,
    "SIGTERM": lambda run: run.supervisor.send_signal(signal.SIGTERM),
    "SIGHUP": lambda run: run.supervisor.send_signal(signal.SIGHUP),
    "the reader of the output exits": lambda run: run.reader.kill(),
}


@pytest.mark.parametrize("way", list(WAYS))
def test_every_way_of_stopping_leaves_nothing_running(way, tmp_path):
    run = start(tmp_path / "var", new_ports())
    procs: dict[int, str] = {}
    try:
        wait_until_up(run)
        procs = processes_of(run.supervisor.pid)
        names = " ".join(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") for pid in procs)
        for part in ("moto.server", "gunicorn", "ops.worker.flower", "duties", "worker", "redis-server"):
            assert part in names, f"{part} is not among the stack's processes: {names}"

        signalled = time.monotonic()
        WAYS[way](run)
        took = wait_gone(procs, GONE_WITHIN)
        run.supervisor.wait(GONE_WITHIN)
        total = time.monotonic() - signalled
        print(f"\n{way}: {len(procs)} processes gone in {took:.1f}s; supervisor exited after {total:.1f}s")

        assert run.supervisor.returncode == 0, run.explain()
        assert tracebacks(run) == [], run.explain()
        assert "Stopped: every process of the stack is gone" in run.stack_log()
        assert not (run.var_dir / "stack.pid").exists()
    finally:
        cleanup(procs, run)


def test_a_second_start_stops_what_a_killed_first_run_left(tmp_path):
    """The supervisor SIGKILLed: its children die with it; one that could not (stopped) is found and stopped."""
    var_dir = tmp_path / "var"
    ports = new_ports()
    first = start(var_dir, ports, "first")
    procs: dict[int, str] = {}
    runs = [first]
    try:
        wait_until_up(first)
        procs = processes_of(first.supervisor.pid)

        # While it runs, a second start from the same var dir refuses and says what to do.
        again = start(var_dir, ports, "refused")
        runs.append(again)
        assert again.supervisor.wait(60) == 2
        again.reader.wait(5)
        assert f"stop it first (Ctrl-C, or: kill {first.supervisor.pid})" in again.terminal()

        # The web tier stopped (SIGSTOP) cannot act on its death signal: a leftover that keeps the web port.
        recorded = dict(line.split()[:2] for line in (var_dir / "stack.pid").read_text().splitlines())
        web = int(recorded["web"])
        web_session = {pid: started for pid, started in procs.items() if stat_fields(pid)[3] == str(web)}
        os.killpg(web, signal.SIGSTOP)
        first.supervisor.kill()
        first.supervisor.wait(5)
        first.reader.kill()

        others = {pid: started for pid, started in procs.items() if pid not in web_session}
        took = wait_gone(others, 20)
        print(f"\nsupervisor SIGKILLed: the {len(others)} processes outside the stopped web tier gone in {took:.1f}s")
        assert alive(web_session), "the stopped web tier should still be there"

        second = start(var_dir, ports, "second")
        runs.append(second)
        wait_until_up(second)
        assert "Stopped what an earlier run left running (it did not stop cleanly): web." in second.terminal()
        assert alive(web_session) == []
        second_procs = processes_of(second.supervisor.pid)
        procs.update(second_procs)
        second.supervisor.send_signal(signal.SIGTERM)
        wait_gone(second_procs, GONE_WITHIN)
        assert second.supervisor.wait(GONE_WITHIN) == 0
        assert tracebacks(second) == [], second.explain()
    finally:
        cleanup(procs, *runs)
