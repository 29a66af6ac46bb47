"""The limits of one import, each settable through the environment variable in brackets.

A file may be at most ``MAX_FILE_BYTES`` [HCE_MAX_FILE_MIB] and ``MAX_LINES`` lines; a document's text at
most ``MAX_TEXT_CHARS`` characters (longer means a broken file, e.g. missing line breaks, and is an error); an
import at most ``MAX_DOCUMENTS`` documents [HCE_MAX_DOCUMENTS]; a ZIP may unpack to at most ``MAX_ZIP_BYTES``
[HCE_MAX_UNPACKED_MIB] in ``MAX_ZIP_MEMBERS`` files, and a member larger than ``ZIP_RATIO_MIN_BYTES`` may
unpack to at most ``MAX_ZIP_RATIO`` times its packed size (more is a ZIP bomb). The readers look each limit
up here when they use it (``limits.MAX_LINES``), so setting one here sets it for all of them.
"""
from __future__ import annotations

import os

from ..errors import InputError


def _env_int(name: str, default: int, scale: int = 1) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) * scale if value else default
    except ValueError:
        raise InputError(f"the environment variable {name}={value!r} is not a whole number") from None


MAX_FILE_BYTES = _env_int("HCE_MAX_FILE_MIB", 1 << 30, 1 << 20)         # 1 GiB per file
MAX_LINES = 5_000_000                                                     # per file
MAX_TEXT_CHARS = 1_000_000                                                # per document text
MAX_DOCUMENTS = _env_int("HCE_MAX_DOCUMENTS", 1_000_000)                  # per import
MAX_ZIP_BYTES = _env_int("HCE_MAX_UNPACKED_MIB", 2 << 30, 1 << 20)       # 2 GiB unpacked
MAX_ZIP_MEMBERS = 200_000
MAX_ZIP_RATIO = 100               # unpacked / packed size of one member, checked above ZIP_RATIO_MIN_BYTES
ZIP_RATIO_MIN_BYTES = 16 << 20
