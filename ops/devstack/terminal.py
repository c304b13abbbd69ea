"""The supervisor's output: a terminal or a pipe that may go away at any moment.

``make run 2>&1 | cat`` and Ctrl-C: ``cat`` dies with the rest of the
foreground group, and the supervisor's next write fails (EPIPE; Python
ignores SIGPIPE, so it is a BrokenPipeError). A closed terminal gives EIO.
Either way the stack must still stop in order, quietly: ``say`` never
raises, and once the output is gone it goes to /dev/null (so nothing later,
not even the interpreter's last flush, fails on it). Every line is also kept
in ``var/stack.log``.

``gone`` notices a pipe whose reader has exited before anything is written:
``poll`` reports POLLERR on a pipe's write end once no reader is left
(POLLHUP for a hung-up terminal or socket), so the supervisor stops within a
tick of losing its reader instead of at the next event.
"""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path


class Terminal:
    def __init__(self, log_path: Path | None = None, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.log_path = log_path
        self.closed = False

    def keep(self, text: str) -> None:
        """Into the log only."""
        if self.log_path is None:
            return
        try:
            with open(self.log_path, "a", encoding="utf-8") as f:
                now = time.time()
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
                f.writelines(f"{stamp} {line}\n" for line in text.splitlines() or [""])
        except OSError:
            pass

    def say(self, text: str) -> None:
        """One message to the terminal (and the log); never raises."""
        self.keep(text)
        if self.closed:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # EPIPE, EIO, or a closed file object
            self._lost()

    def gone(self) -> bool:
        """Has the reader of our output gone away (pipe reader exited, terminal hung up)?"""
        if self.closed:
            return True
        try:
            fd = self.stream.fileno()
            poller = select.poll()
            poller.register(fd, 0)  # POLLERR, POLLHUP and POLLNVAL are always reported
            events = poller.poll(0)
        except (OSError, ValueError):
            events = [(None, select.POLLERR)]
        if any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in events):
            self._lost()
            return True
        return False

    def _lost(self) -> None:
        """The reader is gone: point stdout and stderr (when they share the dead pipe) at /dev/null."""
        self.closed = True
        self.keep("(the terminal is gone: from here on this log only)")
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        for stream in {sys.stdout, sys.stderr, self.stream}:
            try:
                fd = stream.fileno()
                if stream is self.stream or _same_file(fd, self.stream.fileno()) or _dead(fd):
                    os.dup2(devnull, fd)
            except (OSError, ValueError):
                pass
        os.close(devnull)


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _dead(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, 0)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
