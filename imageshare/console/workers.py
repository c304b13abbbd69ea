"""The worker table: each member of the pool with its state, host, uptime, tasks done and current task.

State, host and uptime come from the provider (``PoolState.workers``: the
local pid files and /proc, or the EC2 group and its instances). Tasks done
and the current task are not recorded per worker anywhere in the database
(an image row does not say which worker made it); they come from Flower,
which hears the workers' task events, when the events channel
(``CELERY_EVENTS_URL``) and ``FLOWER_URL`` are set. Without them the table
says "not measured" rather than guess.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urljoin

from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

FLOWER_TIMEOUT = 1.5  # seconds per call: the console never waits long on its monitor


@dataclass
class Activity:
    done: int = 0  # tasks succeeded since Flower started (by worker name)
    current: list[str] = field(default_factory=list)


def flower_enabled() -> bool:
    return bool(settings.CELERY_EVENTS_URL and settings.FLOWER_URL)


def _get(path: str, auth: bool) -> bytes:
    request = urllib.request.Request(urljoin(settings.FLOWER_URL, path))
    if auth and settings.FLOWER_BASIC_AUTH:
        token = base64.b64encode(settings.FLOWER_BASIC_AUTH.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=FLOWER_TIMEOUT) as response:  # noqa: S310 (our own setting)
        return response.read()


def _describe(task: dict, now: float) -> str:
    name = str(task.get("name") or "task").rsplit(".", 1)[-1]
    args = str(task.get("args") or "").strip("()[],' ")
    since = task.get("started")
    took = f" for {now - since:.0f} s" if isinstance(since, int | float) else ""
    return f"{name}({args[:8]}…){took}" if args else f"{name}{took}"


def flower_activity(now: float | None = None) -> dict[str, Activity] | None:
    """Per Celery worker name ("worker1@host"): tasks succeeded and tasks running; None when not available."""
    if not flower_enabled():
        return None
    now = now or time.time()
    found: dict[str, Activity] = {}
    try:
        for family in text_string_to_metric_families(_get("metrics", auth=False).decode()):
            for sample in family.samples:
                if sample.name == "flower_events_total" and sample.labels.get("type") == "task-succeeded":
                    found.setdefault(sample.labels["worker"], Activity()).done += int(sample.value)
        started = json.loads(_get("api/tasks?state=STARTED&limit=200", auth=True))
    except Exception as exc:  # Flower down or unreachable: the table says so
        log.info("Flower unavailable for the worker table: %s", exc)
        return None
    stale = 2 * settings.TASK_TIME_LIMIT  # a worker killed mid-task leaves its task "started" in Flower
    for task in started.values():
        since = task.get("started")
        if task.get("worker") and (not isinstance(since, int | float) or now - since < stale):
            found.setdefault(task["worker"], Activity()).current.append(_describe(task, now))
    return found


def _match(activity: dict[str, Activity], worker) -> Activity | None:
    """The Celery worker of a pool member: by name ("worker1@…") locally, by host on EC2 (one worker each)."""
    short_host = worker.host.split(".")[0]
    for celery_name, act in activity.items():
        name, _, host = celery_name.partition("@")
        if worker.pid is not None:  # local: every worker shares the host; the name tells them apart
            if name == worker.id:
                return act
        elif short_host and host.split(".")[0] == short_host:
            return act
    return None


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def worker_rows(pool, now: float | None = None, activity: dict[str, Activity] | None = None) -> list[dict]:
    now = now or time.time()
    rows = []
    for w in pool.workers if pool else ():
        act = _match(activity, w) if activity is not None else None
        rows.append(
            {
                "id": w.id,
                "state": w.state,
                "detail": w.detail,
                "host": w.host,
                "pid": w.pid,
                "uptime_seconds": round(now - w.started_at) if w.started_at else None,
                "uptime": human_duration(now - w.started_at) if w.started_at else "",
                "tasks_done": act.done if act else (0 if activity is not None else None),
                "current_task": ", ".join(act.current) if act and act.current else "",
            }
        )
    # The EC2 group counts instances it has yet to launch as starting capacity: say so, not nothing.
    launching = pool.starting - sum(1 for w in pool.workers if w.state == "starting") if pool else 0
    if launching > 0:
        rows.append(
            {"id": f"{launching} to launch", "state": "starting", "detail": "", "host": "", "pid": None,
             "uptime_seconds": None, "uptime": "", "tasks_done": None, "current_task": ""}
        )  # fmt: skip
    return rows
