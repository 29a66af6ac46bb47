"""Same seed, same run: what ``train()`` fixes for its duration besides seeding the generators.

* :func:`deterministic_torch`: torch's deterministic algorithms (``warn_only``: an op without a deterministic
  implementation warns instead of failing). On a CPU the one op of a run it changes is the backward of
  advanced indexing (``index_put_`` with ``accumulate=True``), which torch runs with parallel atomic float adds
  once it has 32768 elements: their order, hence the rounding of the sums, changed from run to run. The
  hierarchical loss gathers its memory vectors with ``index_select`` anyway (deterministic either way); the
  mode covers the model's and any future op.
* :func:`run_threads`: the torch thread count the run trains on (pinned with
  :func:`hce_engine.threads.fixed_threads`): float results depend on it.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

from hce_engine.threads import PROCESS_THREADS

_lock = threading.Lock()
_active = 0
_saved: tuple[bool, bool] = (False, False)


@contextlib.contextmanager
def deterministic_torch() -> Iterator[None]:
    """torch's deterministic algorithms on (warn only) while inside; the previous mode back when the last
    of the overlapping users leaves (the mode is process-wide; a mode the caller set stays as it was)."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
            if not _saved[0]:
                torch.use_deterministic_algorithms(True, warn_only=True)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                torch.use_deterministic_algorithms(_saved[0], warn_only=_saved[1])


def run_threads() -> int:
    """Torch intra-op threads for a run started from the calling thread: the caller's own count on the main
    thread (a script or test that set it), else the process's (:data:`~hce_engine.threads.PROCESS_THREADS`):
    a background thread's count is whatever torch's global was when it first ran an op, 1 if another thread
    was inside ``one_thread_if`` (a search query being encoded) at that moment."""
    if threading.current_thread() is threading.main_thread():
        return torch.get_num_threads()
    return PROCESS_THREADS
