"""What reaches the terminal while the local stack runs: the lines a person acts on.

Every process logs to a file under the var dir. The supervisor follows some
of them and repeats only: pool size changes (the scaling hook's "scaling
out" / "scaling in"), images that failed, and errors. Everything else (the
hook's holds, access lines, worker chatter, tracebacks) stays in the files,
whose paths the banner prints.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

# The three log line shapes in the stack: Python logging (Django, the hook,
# Flower), Celery's worker format and gunicorn's error log.
_PREFIXES = (
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?:[\w.]+: )?(?P<msg>.*)"),
    re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*: (?P<level>[A-Z]+)/[^\]]*\] (?P<msg>.*)"),
    re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*\] \[\d+\] \[(?P<level>[A-Z]+)\] (?P<msg>.*)"),
)
_SCALING = re.compile(r"^scaling (?:out|in): ")
_FAILED_IMAGE = re.compile(r"'image': '(?P<image>[^']+)', 'failed': '(?P<code>[^']+)'")
_DEAD_LETTERS = re.compile(r"dead-lettered images failed")
_ERRORS = ("ERROR", "CRITICAL")
# The scaling hook's warnings mean it could not read or act (no scaling meanwhile).
_WARNINGS_SHOWN_FROM = ("autoscale",)
REPEAT_QUIET_SECONDS = 60  # the same error again within this long is not repeated on the terminal
MAX_LINE = 300
READ_LIMIT = 256 * 1024  # per file and poll: a flood cannot stall the supervisor


def parse(line: str) -> tuple[str | None, str]:
    """(level, message) of a log line; (None, line) for lines without a known prefix (continuations)."""
    for pattern in _PREFIXES:
        m = pattern.match(line)
        if m:
            return m["level"], m["msg"]
    return None, line


def notable(label: str, line: str) -> tuple[str, bool] | None:
    """What to show for one log line of ``label``'s file: (text, is an event), or None to keep it in the file.

    Events (pool changes, failed images) are always shown; errors are shown
    but not repeated within ``REPEAT_QUIET_SECONDS``.
    """
    level, msg = parse(line)
    if level is None:
        return None  # tracebacks, banners, wrapped lines: the file has them
    if label == "autoscale" and _SCALING.match(msg):
        return msg, True
    m = _FAILED_IMAGE.search(msg)
    if m:
        return f"image {m['image']} failed: {m['code']}", True
    if _DEAD_LETTERS.search(msg):
        return msg, True
    if level in _ERRORS or (level == "WARNING" and label in _WARNINGS_SHOWN_FROM):
        return msg, False
    return None


class LogFollower:
    """Follows log files (and directories of them, e.g. the hook's workers) from where they ended at creation."""

    def __init__(self, files: dict[str, Path], globs: list[tuple[Path, str]] = ()):
        self.files = dict(files)  # label -> path
        self.globs = list(globs)  # (directory, pattern): every match, labelled by its stem
        self.offsets: dict[Path, int] = {}
        self.recent: dict[tuple[str, str], float] = {}
        for path in self._paths().values():  # what is there already belongs to an earlier run
            try:
                self.offsets[path] = path.stat().st_size
            except OSError:
                pass

    def _paths(self) -> dict[str, Path]:
        paths = dict(self.files)
        for directory, pattern in self.globs:
            for path in sorted(Path(directory).glob(pattern)):
                paths.setdefault(path.stem, path)
        return paths

    def _new_lines(self, path: Path) -> list[str]:
        offset = self.offsets.get(path, 0)
        try:
            size = path.stat().st_size
            if size < offset:  # truncated or replaced: start again
                offset = 0
            if size == offset:
                return []
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(READ_LIMIT)
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) < READ_LIMIT:
            return []  # half a line: wait for the rest
        end = end or len(data)
        self.offsets[path] = offset + end
        return data[:end].decode("utf-8", "replace").splitlines()

    def poll(self) -> list[str]:
        """The new terminal lines since the last poll, each with its time and source."""
        out = []
        now = time.monotonic()
        for label, path in self._paths().items():
            for line in self._new_lines(path):
                shown = notable(label, line)
                if shown is None:
                    continue
                text, event = shown
                if not event:
                    key = (label, text)
                    if now - self.recent.get(key, -REPEAT_QUIET_SECONDS) < REPEAT_QUIET_SECONDS:
                        continue
                    self.recent[key] = now
                out.append(f"{time.strftime('%H:%M:%S')} {label}: {text}"[:MAX_LINE])
        return out
