"""The decision history as a person reads it: repeated holds in one line with a count, every change on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import ScalingDecision

REPEATABLE = {"hold", "off", "skip"}  # a tick that changed nothing: consecutive ones collapse


@dataclass
class Line:
    action: str
    label: str  # what the page shows: "hold", "hold (manual)", "out", ...
    newest: datetime
    oldest: datetime
    previous: int | None
    desired: int | None
    visible: int | None
    in_flight: int | None
    reason: str  # the newest tick's
    count: int = 1

    @property
    def change(self) -> bool:
        return self.action in ("out", "in")

    def as_dict(self) -> dict:
        """What ``console.js`` shows in the same table (times in UTC, like the page)."""
        newest = f"{self.newest:%H:%M:%S}"

        def q(v):
            return "?" if v is None else v

        return {
            "time": f"{self.oldest:%H:%M:%S}–{newest}" if self.count > 1 else newest,
            "label": self.label,
            "count": self.count,
            "pool": f"{q(self.previous)} → {q(self.desired)}",
            "queue": f"{q(self.visible)} / {q(self.in_flight)}",
            "reason": self.reason,
            "change": self.change,
        }


def _label(d: ScalingDecision) -> str:
    if d.reason.startswith("hold (manual)"):
        return "hold (manual)"
    if d.reason.startswith("manual:"):
        return f"{d.action} (manual)"
    return d.action


def collapse(decisions) -> list[Line]:
    """``decisions`` newest first; consecutive no-change ticks with the same action and pool make one line."""
    lines: list[Line] = []
    for d in decisions:
        label = _label(d)
        last = lines[-1] if lines else None
        if (
            last is not None
            and d.action in REPEATABLE
            and (last.label, last.previous, last.desired) == (label, d.previous, d.desired)
        ):
            last.count += 1
            last.oldest = d.created_at
            continue
        lines.append(
            Line(d.action, label, d.created_at, d.created_at, d.previous, d.desired, d.visible, d.in_flight, d.reason)
        )
    return lines


def recent_lines(ticks: int = 500, lines: int = 30) -> list[Line]:
    return collapse(ScalingDecision.objects.all()[:ticks])[:lines]
