"""One training run at a time per workspace: an exclusive lock on a file in the workspace folder.

A CPU cannot train two encoders at once well, and two runs in one process would share torch's random state.
So a run takes the workspace's training slot before it starts; a second run (another tab, another process,
the next run of an experiment) waits 'queued' until the first ends. The operating system releases the lock
when its process dies, so a killed run never blocks the queue.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Callable, Iterator

#: Seconds between two tries of a waiting run.
POLL_S = 0.5


@contextlib.contextmanager
def hold(path: str, on_wait: Callable[[], None] | None = None, cancel: Callable[[], bool] | None = None,
         wait_s: float | None = None) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created if missing) for the ``with`` body.

    ``on_wait`` is called once if the lock is taken (the caller marks its run queued); ``cancel`` is polled
    while waiting (True: raise InterruptedError); after ``wait_s`` seconds of waiting, TimeoutError. Threads
    of one process exclude each other too (each call opens its own file description).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    start = time.monotonic()
    try:
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if cancel is not None and cancel():
                    raise InterruptedError("cancelled while queued") from None
                if wait_s is not None and time.monotonic() - start > wait_s:
                    raise TimeoutError(f"{path} is held by another run") from None
                time.sleep(POLL_S)
        yield
    finally:
        os.close(fd)  # releases the lock


def busy(path: str) -> bool:
    """Whether someone holds the lock on ``path`` now."""
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
