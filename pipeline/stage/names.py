"""File names as docks write them: bytes first, shown readably.

Linux hands Python undecodable bytes as surrogate escapes; the catalog keeps the exact bytes and a
readable form: UTF-8 when valid, else GB18030 (what Windows docks in China write), else escapes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Sequence


def raw(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> bytes:
    return os.fsencode(path)


def readable(name: bytes) -> str:
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return name.decode("gb18030")
    except UnicodeDecodeError:
        return name.decode("utf-8", "backslashreplace")


def path_key(path: bytes) -> str:
    """A fixed-length key for one source path (paths may exceed an index's width)."""
    return hashlib.sha256(path).hexdigest()


def is_temporary(name: bytes, patterns: Sequence[str]) -> bool:
    """True for names a writer is still filling (``*.part``, ``~*``, dotfiles…) per the settings."""
    text = readable(name)
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)
