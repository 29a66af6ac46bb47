"""Safe file access for the readers: a file is checked (exists, regular, not empty, within the size limit)
before it is read; text is read line by line as UTF-8 and checked to be storable; a folder entry must have a
UTF-8 name and may not be a symbolic link leading outside the folder. Every problem is an
:class:`~hce_engine.errors.InputError` naming the file and, where there is one, the line.

Line breaks may be ``\n``, ``\r\n`` or a lone ``\r``. Text must be valid Unicode: no NUL characters and no
lone surrogates (``"\ud800"`` in JSON), whether raw or escaped.
"""
from __future__ import annotations

import io
import os
import stat
from typing import Iterator

from ..errors import InputError
from . import limits


def check_file(path: str, label: str) -> None:
    """Refuse a path that is missing, not a regular file, empty or over ``limits.MAX_FILE_BYTES``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found" + (" (a broken symbolic link)" if os.path.islink(path) else ""),
                         label) from None
    except OSError as exc:  # symlink loop, name too long, permission
        raise InputError(f"cannot read the file: {exc.strerror or exc}", label) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", label)
    if st.st_size == 0:
        raise InputError("the file is empty", label)
    if st.st_size > limits.MAX_FILE_BYTES:
        raise InputError(f"the file is {st.st_size / 2**20:.0f} MiB; the limit is {limits.MAX_FILE_BYTES >> 20} MiB "
                         "(split it, import a ZIP of smaller files, or raise HCE_MAX_FILE_MIB)", label)


def bad_char(value: str) -> str | None:
    """Why ``value`` is not storable text (a NUL or a lone surrogate), or None."""
    if "\x00" in value:
        return f"a NUL character (at character {value.index(chr(0)) + 1})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a lone surrogate {value[exc.start]!r} (at character {exc.start + 1}), which is not valid Unicode"
    return None


def read_lines(path: str, label: str, keep_ends: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line); binary, non-UTF-8 and oversize files are errors.

    Lines end at ``\n``, ``\r\n`` or a lone ``\r``; ``keep_ends`` keeps the line break (as the csv
    module wants, so a quoted field keeps its line breaks), else it is stripped. A UTF-8 BOM is dropped.
    """
    check_file(path, label)
    with open(path, "rb") as raw:
        if b"\x00" in raw.read(8192):
            raise InputError("this is a binary file, not UTF-8 text", label)
        raw.seek(0)
        # surrogateescape: an invalid byte becomes a lone surrogate, found per line below with its line number
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        limit = 4 * limits.MAX_TEXT_CHARS + 2
        lineno = 0
        while line := text.readline(limit):
            lineno += 1
            if lineno > limits.MAX_LINES:
                raise InputError(f"the file has more than {limits.MAX_LINES:,} lines; the limit is "
                                 f"{limits.MAX_LINES:,}", label, lineno)
            if len(line) >= limit and not line.endswith(("\n", "\r")):
                raise InputError(f"the line is over {limit - 2:,} characters (a missing line break?)", label, lineno)
            if "\x00" in line:
                raise InputError("NUL byte: this looks like a binary file", label, lineno)
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(f"not valid UTF-8 (character {exc.start + 1} of the line); save the file as UTF-8",
                                 label, lineno) from None
            yield lineno, (line if keep_ends else line.rstrip("\r\n"))


def clean(value, label: str, lineno: int, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        else:
            raise InputError(f"{what} must be a string, got {type(value).__name__}", label, lineno)
    value = value.strip()
    if len(value) > limits.MAX_TEXT_CHARS:
        raise InputError(f"{what} is {len(value):,} characters; the limit is {limits.MAX_TEXT_CHARS:,} "
                         "(a missing line break?)", label, lineno)
    bad = bad_char(value)
    if bad:
        raise InputError(f"{what} holds {bad}", label, lineno)
    return value


def check_metadata(meta: dict, label: str, lineno: int) -> None:
    """Metadata is stored as JSON text: its keys and string values must be storable too."""
    stack: list[dict | list] = [meta]
    while stack:
        item = stack.pop()
        values = list(item.items()) if isinstance(item, dict) else list(enumerate(item))
        for k, v in values:
            for s in (k, v):
                if isinstance(s, str) and (bad := bad_char(s)):
                    raise InputError(f"the field {str(k)[:40]!r} holds {bad}", label, lineno)
            if isinstance(v, (dict, list)):
                stack.append(v)


def check_inside(folder: str, rel: str, label: str) -> None:
    """Refuse a folder entry whose name is not UTF-8 or that is a symbolic link leading outside the folder
    (or nowhere)."""
    shown = os.path.join(label, rel)
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the file name {rel!r} is not valid UTF-8; rename it", label) from None
    full = os.path.join(folder, rel)
    if not os.path.islink(full):
        return
    try:
        target = os.path.realpath(full, strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        raise InputError("a broken symbolic link (its target does not exist, or it loops)", shown) from None
    root = os.path.realpath(folder)
    if os.path.commonpath([root, target]) != root:
        raise InputError("a symbolic link to a file outside the imported folder; copy the file in instead",
                         shown)
