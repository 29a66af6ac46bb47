"""One progress protocol for every long step: encoding, tree building, training, adds and background jobs.

A step reports :class:`Progress` events to a :data:`ProgressFn`; the ``hce`` command draws them as a bar in a
terminal (nothing with ``--json``), a background job keeps the latest for the app to poll.

Example::

    enc.encode(texts, progress=lambda ev: print(ev.stage, ev.done, ev.total))
    ws.encode("jargon", progress=print)          # Progress(stage='encode', done=64, total=2307, ...)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable


def fmt_duration(seconds: float | None) -> str:
    """45 s, 3 min, 1 h 20 min; an em dash when unknown (the one way the app and ``hce`` write durations)."""
    if seconds is None or seconds != seconds:
        return "—"
    s = max(0, int(round(seconds)))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s // 3600} h {round(s % 3600 / 60)} min"


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units (documents, steps, ...) of ``stage``; ``eta_s``: seconds left, if known."""
    stage: str
    done: int = 0
    total: int = 0
    eta_s: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressFn = Callable[[Progress], None]


def as_stage(report: ProgressFn | None, stage: str) -> ProgressFn | None:
    """``report`` with every event renamed to ``stage`` (e.g. the encoder's "encode" as "final encode")."""
    if report is None:
        return None
    return lambda ev: report(replace(ev, stage=stage))
