"""Exceptions the engine raises for problems a user can fix. The CLI and the app show their text as is."""
from __future__ import annotations


class HCEError(Exception):
    """Base class: a clear, user-facing message; never a bug."""


class InputError(HCEError):
    """Bad input data.

    Args:
        problem: what is wrong, in words.
        file: the file (or archive member) it was found in.
        line: 1-based line number, when it applies.
    """

    def __init__(self, problem: str, file: str | None = None, line: int | None = None):
        self.problem, self.file, self.line = problem, file, line
        where = file or ""
        if line is not None:
            where += f", line {line}" if where else f"line {line}"
        super().__init__(f"{where}: {problem}" if where else problem)


class NotFoundError(HCEError):
    """A named corpus, run or document does not exist."""


class WorkspaceBusyError(HCEError):
    """Another process holds the workspace database open for writing."""
