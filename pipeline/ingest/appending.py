"""Appending the pieces of an upload to its partial file, each to be flushed (``fsync``) before its
offset is recorded.

Two ways, by what the file system allows:

- **Around the page cache** (``O_DIRECT``), where the file system takes it: the bytes are gathered
  into a page-aligned buffer and written to the device a block of :data:`STAGE` bytes at a time,
  while the next bytes arrive. The ``fsync`` that ends the piece is left with the piece's last
  partial block and the file's size. Through the cache, the same ``fsync`` had the whole piece to
  write out at once, and a disk that takes a burst quickly slows to a fraction of its speed under
  one such flush after another (1 GiB in 8 MiB pieces: about 1 GB/s written around the cache, 0.3
  to 0.8 GB/s through it, on the same disk). The read-back that follows
  (:mod:`pipeline.ingest.readback`) then reads what the device holds, not the cache's copy.
- **Through the page cache**, elsewhere (``tmpfs``, or a file system that refuses a direct write):
  ``pwritev`` of the buffers as they came, and their write-out started at once
  (``sync_file_range``) so that the ``fsync`` finds most of the piece written.

A direct write needs its file offset, length and memory aligned to :data:`ALIGN`. The bytes before
the first aligned offset of a piece (the previous piece ended inside a block) and the bytes after
its last one go through the cache; the ``fsync`` flushes them with the rest. Bytes already recorded
are never written again by this module.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import mmap
import os
from collections.abc import Sequence
from typing import Protocol

from pipeline.storage.libc import start_writeback

logger = logging.getLogger(__name__)

ALIGN = 4096  # offsets, lengths and memory of a direct write are multiples of this
STAGE = 1 << 20  # bytes gathered before one direct write
_IOV_MAX = 1024  # buffers one writev takes on Linux


def pwrite_all(fd: int, views: list[memoryview], offset: int) -> None:
    """Write every byte of ``views`` at ``offset`` (a write may take fewer than it was given)."""
    while views:
        written = os.pwritev(fd, views[:_IOV_MAX], offset)
        if written <= 0:
            raise OSError(errno.EIO, f"nothing written at byte {offset:,}")
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]


class Appender(Protocol):
    position: int

    def write(self, buffers: Sequence[bytes]) -> None:
        """Write ``buffers`` after what was written so far (not yet flushed)."""

    def finish(self) -> None:
        """Write whatever is still held back; the caller's ``fsync`` then makes it all durable."""

    def close(self) -> None: ...


class CachedAppender:
    """Appends through the page cache, starting each range's write-out as soon as it is written."""

    def __init__(self, fd: int, position: int) -> None:
        self.fd = fd
        self.position = position

    def write(self, buffers: Sequence[bytes]) -> None:
        views = [memoryview(buffer) for buffer in buffers if buffer]
        size = sum(len(view) for view in views)
        pwrite_all(self.fd, views, self.position)
        start_writeback(self.fd, self.position, size)
        self.position += size

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


class DirectAppender:
    """Appends around the page cache: aligned blocks of :data:`STAGE` bytes through ``direct_fd``,
    the unaligned ends through ``fd`` (the same file, opened without ``O_DIRECT``). Should the file
    system refuse a direct write after all, the rest goes through the cache."""

    def __init__(self, fd: int, direct_fd: int, position: int) -> None:
        self.fd = fd
        self.direct_fd: int | None = direct_fd
        self.stage = mmap.mmap(-1, STAGE)  # page-aligned memory
        self.view = memoryview(self.stage)
        self.filled = 0  # bytes in the stage, the last ones given
        self.position = position

    @property
    def staged_at(self) -> int:
        """The file offset of the stage's first byte."""
        return self.position - self.filled

    def write(self, buffers: Sequence[bytes]) -> None:
        for buffer in buffers:
            data = memoryview(buffer)
            while data:
                if self.filled == 0 and self.position % ALIGN:
                    # Up to the next aligned offset through the cache, where the previous piece ended.
                    size = min(len(data), ALIGN - self.position % ALIGN)
                    pwrite_all(self.fd, [data[:size]], self.position)
                    self.position += size
                else:
                    size = min(len(data), STAGE - self.filled)
                    self.view[self.filled : self.filled + size] = data[:size]
                    self.filled += size
                    self.position += size
                    if self.filled == STAGE:
                        self._write_stage()
                data = data[size:]

    def finish(self) -> None:
        self._write_stage()

    def _write_stage(self) -> None:
        aligned = self.filled - self.filled % ALIGN
        if aligned and self.direct_fd is not None:
            try:
                self._write_direct(aligned)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                logger.info("direct writes refused (%s); writing through the page cache", exc.strerror)
                self._close_direct()
        if self.direct_fd is None:
            aligned = 0
        rest = self.view[aligned : self.filled]
        if rest:
            pwrite_all(self.fd, [rest], self.staged_at + aligned)
        self.filled = 0

    def _write_direct(self, length: int) -> None:
        assert self.direct_fd is not None
        done = 0
        while done < length:
            written = os.pwrite(self.direct_fd, self.view[done:length], self.staged_at + done)
            if written <= 0 or written % ALIGN:
                # A short direct write (the disk is filling) leaves the rest unaligned: hand it over.
                raise OSError(errno.ENOSPC if written >= 0 else errno.EIO, "short direct write")
            done += written

    def _close_direct(self) -> None:
        if self.direct_fd is not None:
            os.close(self.direct_fd)
            self.direct_fd = None

    def close(self) -> None:
        self._close_direct()
        self.view.release()
        with contextlib.suppress(BufferError):  # a slice is still held (by an error's traceback):
            self.stage.close()  # the memory goes with the last of them


def appender(fd: int, path: str | os.PathLike[str], position: int) -> Appender:
    """How to append to ``fd`` (the file at ``path``) from ``position``: around the page cache where
    its file system allows it, through it otherwise."""
    flags = getattr(os, "O_DIRECT", 0)
    if not flags:
        return CachedAppender(fd, position)
    try:
        direct_fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW | flags)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return CachedAppender(fd, position)
    return DirectAppender(fd, direct_fd, position)
