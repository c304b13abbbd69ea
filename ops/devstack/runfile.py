"""``var/stack.pid``: the processes a running local stack owns, so a later start finds what an unclean stop left.

One line per process, ``NAME PID START``: the supervisor first, then each
child the supervisor started (each in its own session). START is field 22 of
``/proc/PID/stat``, so a pid reused by an unrelated process is never taken
for ours. The scaling hook's workers have their own pid files (var/workers,
``ops.scaling.providers.LocalProvider``). The file is removed after a clean
stop; when it is still there at the next start, the run before ended
without stopping (the supervisor was SIGKILLed, or the machine stopped).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ops.process import is_running, session_members, signal_session, start_time, stat_fields

SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Entry:
    name: str
    pid: int
    started: str | None


class RunFile:
    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, supervisor: int, children: dict[str, int]) -> None:
        lines = [f"{SUPERVISOR} {supervisor} {start_time(supervisor) or '?'}"]
        lines += [f"{name} {pid} {start_time(pid) or '?'}" for name, pid in children.items()]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.path)  # a reader never sees half a file

    def read(self) -> list[Entry]:
        try:
            text = self.path.read_text()
        except OSError:
            return []
        entries = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                entries.append(Entry(parts[0], int(parts[1]), None if parts[2] == "?" else parts[2]))
        return entries

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def running_supervisor(self) -> int | None:
        """The pid of the supervisor that wrote the file, if it is still running (another stack is up)."""
        for e in self.read():
            if e.name == SUPERVISOR and e.pid != os.getpid() and e.started and is_running(e.pid, e.started):
                return e.pid
        return None


def _sessions_left(entries: list[Entry]) -> dict[str, int]:
    """The recorded children whose session still has live processes: name -> session id (= the child's pid).

    When the child itself is gone, its session's other members (gunicorn's
    workers, a worker's pool) still count, unless a new process has taken
    the child's pid (then the session id belongs to someone else).
    """
    left = {}
    for e in entries:
        if e.name == SUPERVISOR or e.started is None:
            continue
        leader_is_ours = is_running(e.pid, e.started) or stat_fields(e.pid) is None
        if leader_is_ours and session_members(e.pid):
            left[e.name] = e.pid
    return left


def stop_leftovers(run_file: RunFile, workers_dir: Path, timeout: float = 5) -> list[str]:
    """Stop what an earlier run left running; return what was stopped (empty: nothing was left).

    The recorded children (SIGTERM, and SIGCONT in case one was stopped; SIGKILL
    after ``timeout``), then the hook's workers from their pid files. Call it
    only when the earlier supervisor is gone (``running_supervisor`` is None).
    """
    from ops.scaling.providers import LocalProvider

    sessions = _sessions_left(run_file.read())
    if sessions:
        signal_session(*sessions.values(), sig=signal.SIGTERM)
        signal_session(*sessions.values(), sig=signal.SIGCONT)  # in case one was stopped
    pool = LocalProvider(workers_dir, None, {}, 1)
    workers = list(pool.state().members)
    if workers:
        pool.stop_all(timeout)
    deadline = time.monotonic() + timeout
    while sessions and time.monotonic() < deadline and session_members(*sessions.values()):
        time.sleep(0.1)
    if sessions:
        signal_session(*sessions.values(), sig=signal.SIGKILL)
    run_file.remove()
    return list(sessions) + workers
