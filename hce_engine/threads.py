"""Thread control for small CPU work: one torch thread where many threads only wait on each other."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def one_thread_if(cond: bool) -> Iterator[None]:
    """One torch intra-op thread for the calling thread while inside (when ``cond``), then restore.

    Tiny ops (a search query's encoding, the thousands of small k-means calls of the divisive builder) gain
    nothing from threads, and on a busy machine every multi-threaded op waits for a descheduled worker.
    Measured on the project's 2-core machine under load: one MiniLM query p50 93 -> 21 ms; divisive build of
    200k documents 128-217 s -> 15-35 s.
    """
    before = torch.get_num_threads()
    if not cond or before <= 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: torch's intra-op thread count when this module was first imported (OMP_NUM_THREADS, else the cores): the
#: process's setting, before any :func:`one_thread_if` changed it.
PROCESS_THREADS = torch.get_num_threads()


@contextlib.contextmanager
def fixed_threads(n: int) -> Iterator[None]:
    """``n`` torch intra-op threads for the calling thread while inside, then its count before.

    Training pins its count with it: a CPU's float results depend on the thread count (each thread sums its
    share of a reduction), and a thread started while another one sits in :func:`one_thread_if` inherits 1
    thread from torch, so a background run could otherwise train on 1 thread or on 2 by chance.
    """
    before = torch.get_num_threads()
    n = max(1, int(n))
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
