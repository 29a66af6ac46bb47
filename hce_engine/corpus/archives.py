"""ZIP archives: each member is checked (a safe relative path, no link, not encrypted, no duplicate or
clashing name, within the size and compression-ratio limits) before the archive is unpacked into a temporary
folder, which is removed after reading.
"""
from __future__ import annotations

import contextlib
import lzma
import os
import stat
import tempfile
import zipfile
import zlib
from typing import Iterator

from .. import tempfiles
from ..errors import InputError
from . import limits
from .files import check_file

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               ValueError, UnicodeError, zlib.error, lzma.LZMAError)  # bz2 raises OSError/ValueError


def _safe_extract(zpath: str, label: str, dest: str) -> None:
    """Unpack a ZIP after checking every member: no absolute or '..' paths, links, duplicate or clashing
    names, encrypted members or oversize content (by size and by compression ratio). Any read error of the
    archive or a member is an :class:`InputError` naming the member."""
    try:
        zf = zipfile.ZipFile(zpath)
        members = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise InputError(f"not a valid ZIP archive ({exc})", label) from None
    with zf:
        if len(members) > limits.MAX_ZIP_MEMBERS:
            raise InputError(f"the archive has {len(members):,} entries; the limit is {limits.MAX_ZIP_MEMBERS:,}",
                             label)
        total = 0
        files: set[str] = set()
        folders: set[str] = set()
        for m in members:
            name = m.filename
            if not name:
                raise InputError("the archive holds a member with an empty name", label)
            parts = name.replace("\\", "/").split("/")
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise InputError(f"unsafe path in archive: {name!r} (absolute or with '..')", label)
            if stat.S_ISLNK(m.external_attr >> 16):
                raise InputError(f"the archive holds a symbolic link: {name!r}", label)
            if m.flag_bits & 0x1:
                raise InputError(f"{name}: the member is encrypted; unpack it first", label)
            if m.file_size > limits.MAX_FILE_BYTES:
                raise InputError(f"{name}: unpacks to {m.file_size >> 20} MiB; the limit is "
                                 f"{limits.MAX_FILE_BYTES >> 20} MiB per file", label)
            if (m.file_size > limits.ZIP_RATIO_MIN_BYTES
                    and m.file_size > limits.MAX_ZIP_RATIO * max(m.compress_size, 1)):
                raise InputError(f"{name}: unpacks to {m.file_size >> 20} MiB from {m.compress_size:,} bytes "
                                 f"(over {limits.MAX_ZIP_RATIO}:1); this looks like a ZIP bomb", label)
            total += m.file_size
            key = "/".join(p for p in parts if p and p != ".").casefold()
            if not m.is_dir():
                if key in files:
                    raise InputError(f"the archive holds {name!r} twice", label)
                files.add(key)
            folders.update("/".join(key.split("/")[:i]) for i in range(1, key.count("/") + 1 + m.is_dir()))
        clash = files & folders
        if clash:
            raise InputError(f"the archive holds a file and a folder both named {sorted(clash)[0]!r}", label)
        if total > limits.MAX_ZIP_BYTES:
            raise InputError(f"the archive unpacks to {total >> 20} MiB; the limit is {limits.MAX_ZIP_BYTES >> 20} MiB "
                             "(raise HCE_MAX_UNPACKED_MIB)", label)
        for m in members:
            target = os.path.realpath(os.path.join(dest, m.filename))
            if not target.startswith(os.path.realpath(dest) + os.sep):
                raise InputError(f"unsafe path in archive: {m.filename!r}", label)
            try:
                if m.is_dir():
                    os.makedirs(target, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), exist_ok=True)
                # ZipExtFile never returns more than the header's file_size (checked above), and a member
                # whose data disagrees with its header fails its CRC check: BadZipFile below.
                with zf.open(m) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            except _ZIP_ERRORS as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
                raise InputError(f"{m.filename}: cannot unpack this member ({reason})", label) from None


@contextlib.contextmanager
def unpacked(path: str, label: str) -> Iterator[tuple[str, str]]:
    """Unpack a checked ZIP into a temporary folder; yields (the folder to read, its label): the archive's one
    top folder when it holds just that, else the whole of it. The folder is removed afterwards."""
    check_file(path, label)
    with tempfile.TemporaryDirectory(prefix=tempfiles.prefix("zip")) as tmp:
        _safe_extract(path, label, tmp)
        entries = [e for e in os.listdir(tmp) if not e.startswith(".") and e != "__MACOSX"]
        root = os.path.join(tmp, entries[0]) if len(entries) == 1 and os.path.isdir(
            os.path.join(tmp, entries[0])) else tmp
        yield root, label + (f"/{entries[0]}" if root != tmp else "")
