"""Process helpers shared by the long-running services (the scaling hook, the local launcher).

Linux only where it says so (``/proc`` and ``prctl``); elsewhere those
helpers do nothing or report nothing, and the callers keep working.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """Truthy once one of ``signals`` (SIGINT and SIGTERM by default) arrived.

    Long-running loops check it and stop cleanly; ``signum`` says which
    signal it was. The handler only sets a flag, so a second signal during
    the stop changes nothing.
    """

    def __init__(self, signals: Iterable[int] = STOP_SIGNALS):
        self.stopping = False
        self.signum: int | None = None
        for sig in signals:
            signal.signal(sig, self._set)

    def _set(self, signum, frame):
        self.stopping = True
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.stopping


# --- A child that dies with its parent (Linux) ------------------------------------
_PR_SET_PDEATHSIG = 1
# Looked up before any fork, so a child only calls into it (the process's own
# symbols: libc is already loaded). Elsewhere than Linux: no backstop.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets ``sig`` when its parent dies.

    The backstop for a parent killed without a chance to stop its children
    (SIGKILL, a crash): the kernel signals them (``PR_SET_PDEATHSIG``).
    SIGTERM by default, so the child still stops in its own orderly way.

    The kernel ties this to the parent *thread*: call Popen from a thread
    that lives as long as the process (the main thread), or the children
    die when that thread ends. From any other thread this returns None (no
    backstop). The child also gets default handling of the stop signals,
    whatever the parent inherited (a shell's background job ignores SIGINT).
    Returns None where ``prctl`` is unavailable.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
            os.kill(os.getpid(), sig)

    return preexec


def spawn(args: list[str], env: dict[str, str], log_path, cwd=None) -> subprocess.Popen:
    """Start a service's child: its own session, output appended to ``log_path``, gone when we are.

    Its own session, so a Ctrl-C meant for the supervisor's terminal does not
    reach it (the supervisor stops its children in order); ``die_with_parent``,
    so the kernel stops it should the supervisor die.
    """
    with open(log_path, "ab") as out:  # the child keeps its own copy
        return subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


# --- What /proc says about a process (Linux) --------------------------------------
def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; the command name may hold spaces. None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: when the process started (clock ticks since boot); None if gone.

    With the pid it names one process: a later process that reuses the pid
    has another start time.
    """
    fields = stat_fields(pid)
    return fields[19] if fields else None


def is_running(pid: int, started: str | None) -> bool:
    """Is ``pid`` alive (not a zombie) and, when ``started`` is given, still the process that started then?"""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or fields[19] == started


def session_members(*sids: int) -> list[int]:
    """Live processes of the sessions ``sids`` (children started with ``start_new_session``, and their descendants)."""
    wanted = {str(sid) for sid in sids}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields and fields[3] in wanted and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def signal_session(*sids: int, sig: int) -> None:
    """Send ``sig`` to every process of the sessions ``sids`` (their process groups may differ)."""
    for pid in session_members(*sids):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
