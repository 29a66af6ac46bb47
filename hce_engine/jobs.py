"""Background runs inside the owning process: one thread per run, with progress and cancel.

The database stays the source of truth (a run's status and log live there, so a page reload or a second tab
sees them); a :class:`Job` only adds what is live: the current stage, counts and the cancel flag. If the
process dies, its runs stay 'running' in the database and are marked 'interrupted' when the workspace is
next opened.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

from .progress import Progress


@dataclass
class Job:
    """A run working in a thread of this process: its latest :class:`Progress` and its cancel flag."""
    run_id: int
    kind: str
    cancel_event: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=lambda: Progress("queued"))
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None

    def report(self, event: Progress) -> None:
        """A :data:`~hce_engine.progress.ProgressFn`: keep the latest event."""
        self.progress = event

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def snapshot(self) -> dict:
        """The latest event's fields with run_id, kind, elapsed_s and cancelling."""
        return {"run_id": self.run_id, "kind": self.kind, **asdict(self.progress),
                "elapsed_s": time.time() - self.started, "cancelling": self.cancelled()}


class JobRegistry:
    """Runs started by this process, by run id."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def start(self, run_id: int, kind: str, target: Callable[[Job], None]) -> Job:
        """Run ``target(job)`` in a daemon thread; the job is forgotten when it returns."""
        job = Job(run_id, kind)

        def body() -> None:
            try:
                target(job)
            except BaseException:  # noqa: BLE001 - target records the failure in the database
                pass
            finally:
                with self._lock:
                    self._jobs.pop(run_id, None)

        job.thread = threading.Thread(target=body, name=f"hce-{kind}-{run_id}", daemon=True)
        with self._lock:
            self._jobs[run_id] = job
        job.thread.start()
        return job

    def get(self, run_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def cancel(self, run_id: int) -> bool:
        job = self.get(run_id)
        if job is None:
            return False
        job.cancel_event.set()
        return True

    def active(self) -> list[int]:
        with self._lock:
            return sorted(self._jobs)

    def wait(self, run_id: int, timeout: float | None = None) -> None:
        job = self.get(run_id)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
