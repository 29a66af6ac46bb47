"""Temporary folders named after the process that made them, so that what a killed process left behind
(a ZIP unpacked mid-import, an app export) can be found and removed when a workspace is next opened.

Names: ``hce-<kind>-<pid>-<random>`` in the system temp folder.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile

KINDS = ("zip", "export", "upload", "add")
_NAME = re.compile(r"^hce-(?:%s)-(\d+)-" % "|".join(KINDS))


def prefix(kind: str) -> str:
    """``mkdtemp``/``TemporaryDirectory`` prefix of this process's folders of ``kind`` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown temp folder kind {kind!r}")
    return f"hce-{kind}-{os.getpid()}-"


def make(kind: str) -> str:
    """A new empty folder of ``kind`` for this process; the caller removes it (or :func:`remove_stale` does
    once this process is gone)."""
    return tempfile.mkdtemp(prefix=prefix(kind))


def remove_stale(tmpdir: str | None = None) -> list[str]:
    """Delete the folders of processes that no longer run. Returns their names."""
    tmpdir = tmpdir or tempfile.gettempdir()
    try:
        names = os.listdir(tmpdir)
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        m = _NAME.match(name)
        if m and not alive(int(m.group(1))):
            shutil.rmtree(os.path.join(tmpdir, name), ignore_errors=True)
            removed.append(name)
    return removed


def remove_own(kind: str, tmpdir: str | None = None) -> None:
    """Delete this process's folders of ``kind`` (at exit)."""
    tmpdir = tmpdir or tempfile.gettempdir()
    mine = prefix(kind)
    for name in os.listdir(tmpdir):
        if name.startswith(mine):
            shutil.rmtree(os.path.join(tmpdir, name), ignore_errors=True)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
