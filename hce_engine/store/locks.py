"""Processes taking turns on one DuckDB file.

DuckDB lets one process at a time open a file. So a :class:`SharedConnection` holds the file only while it
works: every use runs in a :meth:`SharedConnection.session` that opens the database (waiting, with backoff, up
to ``LOCK_TIMEOUT`` seconds while another process holds it) and closes it ``LINGER`` seconds after the last
session ends. Two processes (the app and ``hce train``, two terminals) take turns on it: a process waiting for
the file leaves a marker (``hce.duckdb.waiting.<pid>``), and a holder that sees one closes at its next idle
moment and lets the waiter in before it opens again. Threads of one process share the open connection, each
with its own cursor.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Iterator

import duckdb

from ..errors import WorkspaceBusyError
from ..tempfiles import alive

#: Seconds an operation waits while another process holds the database, before it reports which one does.
LOCK_TIMEOUT = float(os.environ.get("HCE_LOCK_TIMEOUT", "60"))
#: Seconds the database stays open after the last operation (a page's many reads share one open; ~25 ms each).
LINGER = 0.3
#: Seconds a holder that closed for a waiting process stays away, unless the waiter is done sooner.
YIELD = 1.0
POLL = 0.05


def _holder(exc: Exception) -> str:
    """'process 123 (hce train ...)' from DuckDB's lock error, or a generic phrase."""
    import re

    m = re.search(r"PID (\d+)", str(exc))
    if not m:
        return "another process"
    pid = m.group(1)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = " ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
    except OSError:
        cmd = ""
    cmd = " ".join(os.path.basename(a) if i == 0 or a.endswith(".py") else a for i, a in enumerate(cmd.split()))
    return f"process {pid}" + (f" ({cmd[:120]})" if cmd else "")


class SharedConnection:
    """One DuckDB file, opened while in use and shared with other processes (see the module doc).

    Args:
        path: the DuckDB file; ":memory:" for tests (kept open until :meth:`close`).
        lock_timeout: seconds to wait for another process's hold (default ``LOCK_TIMEOUT``).
    """

    def __init__(self, path: str, lock_timeout: float | None = None):
        self.path = path
        self.lock_timeout = LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        self._local = threading.local()
        self._mutex = threading.Lock()
        self._db: duckdb.DuckDBPyConnection | None = None
        self._generation = 0  # bumped at every open: thread cursors of an older connection are stale
        self._users = 0
        self._last_use = 0.0
        self._yield_until = 0.0
        self._closer: threading.Timer | None = None  # the pending LINGER close, if any
        self._closed = False

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file; while another process holds it, wait (leaving a marker, see the module doc)."""
        deadline = time.monotonic() + self.lock_timeout
        marker = None
        try:
            while True:
                try:
                    return duckdb.connect(self.path)
                except duckdb.IOException as exc:
                    if "lock" not in str(exc).lower():
                        raise
                    if time.monotonic() >= deadline:
                        raise WorkspaceBusyError(
                            f"the workspace database {self.path} is held by {_holder(exc)}; waited "
                            f"{self.lock_timeout:.0f} s for it to let go. Wait for it to finish (or stop it), or "
                            "raise HCE_LOCK_TIMEOUT.") from exc
                    if marker is None:
                        marker = f"{self.path}.waiting.{os.getpid()}"
                        open(marker, "w").close()
                    time.sleep(POLL)
        finally:
            if marker is not None:
                with contextlib.suppress(OSError):
                    os.remove(marker)

    def _others_waiting(self) -> bool:
        """Whether another live process waits for the file (markers of dead ones are removed)."""
        if self.path == ":memory:":
            return False
        folder, prefix = os.path.dirname(os.path.abspath(self.path)), os.path.basename(self.path) + ".waiting."
        waiting = False
        for name in os.listdir(folder):
            pid = name[len(prefix):] if name.startswith(prefix) else ""
            if pid.isdigit() and int(pid) != os.getpid():
                if alive(int(pid)):
                    waiting = True
                else:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(folder, name))
        return waiting

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold the database open for the statements inside (re-entrant, thread-safe): opens it when needed,
        waiting for another process's hold; it closes ``LINGER`` s after the last session ends, or at once
        when another process waits for it."""
        with self._mutex:
            if self._closed:
                raise RuntimeError(f"the store {self.path} is closed")
            if self._db is None:
                while time.monotonic() < self._yield_until and self._others_waiting():
                    time.sleep(POLL)  # we closed for a waiting process: let it in first
                self._db = self._connect()
                self._generation += 1
            self._users += 1
        try:
            yield
        finally:
            with self._mutex:
                self._users -= 1
                self._last_use = time.monotonic()
                if self._users == 0 and self.path != ":memory:":
                    if self._others_waiting():
                        self._db.close()
                        self._db = None
                        self._yield_until = time.monotonic() + YIELD
                    elif self._closer is None:
                        self._schedule_close(LINGER)

    def _schedule_close(self, delay: float) -> None:
        """One pending close at a time (called with the mutex held)."""
        self._closer = threading.Timer(delay, self._close_if_idle)
        self._closer.daemon = True
        self._closer.start()

    def _close_if_idle(self) -> None:
        with self._mutex:
            self._closer = None
            if self._db is None or self._users:
                return  # closed already, or in use: the last session to end schedules again
            wait = LINGER - (time.monotonic() - self._last_use)
            if wait > 0.01:  # used since this close was scheduled
                self._schedule_close(wait)
                return
            self._db.close()
            self._db = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the open connection; only inside :meth:`session` (every method opens one)."""
        db = self._db
        if db is None or self._users == 0:
            raise RuntimeError("Store.con is only valid inside `with store.session():`")
        if getattr(self._local, "generation", None) != self._generation:
            self._local.cur, self._local.generation = db.cursor(), self._generation
        return self._local.cur

    def close(self) -> None:
        with self._mutex:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
