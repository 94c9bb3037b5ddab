"""The few C library calls the standard library does not wrap, looked up once; each is None where
the system has none, and its caller has a way without it."""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def find(name: str) -> Callable[..., int] | None:
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(None, use_errno=True), name)
        return found
    except (AttributeError, OSError):
        return None


syncfs = find("syncfs")
linkat = find("linkat")
_sync_file_range = find("sync_file_range")
if _sync_file_range is not None:
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)  # type: ignore[attr-defined]
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing the range out, do not wait


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range of ``fd`` out now, without waiting, so that the
    ``fsync`` which follows finds most of it on disk already (the disk works while the caller goes
    on). Nothing happens where the system has no ``sync_file_range``: the ``fsync`` is what counts."""
    if _sync_file_range is not None and length > 0:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
