"""Process helpers shared by the long-running services (the scaling hook, the local launcher)."""

from __future__ import annotations

import signal


class StopOnSignal:
    """Truthy once SIGINT or SIGTERM arrived: long-running loops check it and stop cleanly."""

    def __init__(self):
        self.stopping = False
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum, frame):
        self.stopping = True

    def __bool__(self) -> bool:
        return self.stopping
