"""Replace a folder so that a process killed at any moment leaves either the old or the new one.

``replace_dir(tmp, final)`` renames ``final`` aside to ``final.old``, renames ``tmp`` to ``final``, then
deletes ``final.old``. Killed between the two renames, only ``final.old`` exists: :func:`recover_dir` (called
before ``final`` is read) renames it back.
"""
from __future__ import annotations

import os
import shutil


def replace_dir(tmp: str, final: str) -> None:
    """Make the complete folder ``tmp`` the new ``final`` (same file system)."""
    old = final + ".old"
    recover_dir(final)
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(final):
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(final: str) -> None:
    """Undo a replacement killed between its renames: bring ``final.old`` back when ``final`` is missing."""
    old = final + ".old"
    if not os.path.exists(final) and os.path.isdir(old):
        os.replace(old, final)
