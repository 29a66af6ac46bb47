"""Background jobs inside the owning process: one thread per job, with progress and cancel.

A job is keyed by what it works on: a run id (encoding, training), an experiment id, a map's (run, align_to).
The database stays the source of truth for runs (a run's status and log live there, so a page reload or a
second tab sees them); a :class:`Job` only adds what is live: the current stage, counts and the cancel flag. If
the process dies, its runs stay 'running' in the database and are marked 'interrupted' when the workspace is
next opened.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Hashable, TypeVar

from .errors import HCEError
from .progress import Progress

K = TypeVar("K", bound=Hashable)


@dataclass
class Job(Generic[K]):
    """A job working in a thread of this process: its latest :class:`Progress` and its cancel flag."""
    key: K
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


class JobRegistry(Generic[K]):
    """Jobs started by this process, by key, one at a time per key. A job that raised leaves its error
    (:meth:`error`) until its key starts again."""

    def __init__(self) -> None:
        self._jobs: dict[K, Job[K]] = {}
        self._errors: dict[K, str] = {}
        self._lock = threading.Lock()

    def start(self, key: K, kind: str, target: Callable[[Job[K]], object]) -> Job[K]:
        """Run ``target(job)`` in a daemon thread, unless a job of ``key`` is running (that one is returned); the
        job is forgotten when it returns."""
        with self._lock:
            running = self._jobs.get(key)
            if running is not None:
                return running
            job: Job[K] = Job(key, kind)
            job.thread = threading.Thread(target=self._body, args=(job, target), name=f"hce-{kind}-{key}",
                                          daemon=True)
            self._jobs[key] = job
            self._errors.pop(key, None)
        job.thread.start()
        return job

    def _body(self, job: Job[K], target: Callable[[Job[K]], object]) -> None:
        error = None
        try:
            target(job)
        except BaseException as exc:  # noqa: BLE001 - kept for error() (a run's target records it in the database)
            error = str(exc) if isinstance(exc, HCEError) else f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._jobs.pop(job.key, None)
                if error is not None:
                    self._errors[job.key] = error

    def get(self, key: K) -> Job[K] | None:
        with self._lock:
            return self._jobs.get(key)

    def error(self, key: K) -> str | None:
        """Why the last job of ``key`` failed (an engine error's message, else the exception's type and text)."""
        with self._lock:
            return self._errors.get(key)

    def cancel(self, key: K) -> bool:
        job = self.get(key)
        if job is None:
            return False
        job.cancel_event.set()
        return True

    def active(self) -> list[K]:
        with self._lock:
            return list(self._jobs)

    def wait(self, key: K, timeout: float | None = None) -> None:
        job = self.get(key)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
