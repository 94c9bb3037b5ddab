"""Copy a file once while hashing it, reading every chunk back from the destination to prove it
was written as hashed.

SHA-256 is the bottleneck (about 360 MB/s per core), so for large files each digest runs in a thread
of its own while the calling thread reads, writes and compares; hashlib releases the GIL, so the
digests use the second core. Small files are done inline, where threads would cost more than they save.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.errors import SourceReadError, StoreError
from pipeline.storage.libc import start_writeback

PIPELINE_THRESHOLD = 8 << 20
HEAD_BYTES = 64


@dataclass(frozen=True)
class Transfer:
    size: int
    digests: dict[str, str]  # always includes "sha256"
    head: bytes


def new_hashers(algorithms: Sequence[str]) -> dict[str, hashlib._Hash]:
    names = ["sha256", *(name for name in algorithms if name != "sha256")]
    return {name: hashlib.new(name) for name in names}


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _readback(readback_fd: int, scratch: bytearray, buf: bytearray, n: int, offset: int) -> None:
    got = os.preadv(readback_fd, [memoryview(scratch)[:n]], offset)
    same = scratch == buf if n == len(buf) else scratch[:n] == buf[:n]
    if got != n or not same:
        raise StoreError(f"read-back of the stored copy differs from the source at byte offset {offset}")


_local = threading.local()


def _thread_buffer(name: str, size: int) -> bytearray:
    """A buffer reused by this thread: allocating (and zeroing) a chunk per small file costs more
    than copying the file."""
    buf: bytearray | None = getattr(_local, name, None)
    if buf is None or len(buf) != size:
        buf = bytearray(size)
        setattr(_local, name, buf)
    return buf


class _InlineDigests:
    """Digest in the copying thread, reusing one buffer."""

    def __init__(self, hashers: dict[str, hashlib._Hash], chunk_size: int) -> None:
        self.hashers = hashers
        self.buf = _thread_buffer("chunk", chunk_size)

    def buffer(self) -> bytearray:
        return self.buf

    def submit(self, buf: bytearray, n: int) -> None:
        view = memoryview(buf)[:n]
        for hasher in self.hashers.values():
            hasher.update(view)

    def give_back(self, buf: bytearray) -> None:
        pass

    def close(self) -> None:
        pass


class _ThreadedDigests:
    """One thread per digest; a buffer returns to the pool once every digest has read it."""

    def __init__(self, hashers: dict[str, hashlib._Hash], chunk_size: int, depth: int = 6) -> None:
        self.hashers = hashers
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(depth):
            self.free.put(bytearray(chunk_size))
        self.pending: dict[int, int] = {}  # id(buffer) -> digests still reading it
        self.lock = threading.Lock()
        self.inboxes: list[queue.Queue[tuple[bytearray, int] | None]] = [queue.Queue() for _ in hashers]
        self.failures: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._digest, args=(hasher, inbox), daemon=True)
            for hasher, inbox in zip(hashers.values(), self.inboxes, strict=True)
        ]
        for thread in self.threads:
            thread.start()

    def _digest(self, hasher: hashlib._Hash, inbox: queue.Queue[tuple[bytearray, int] | None]) -> None:
        while (work := inbox.get()) is not None:
            buf, n = work
            try:
                hasher.update(memoryview(buf)[:n])
            except BaseException as exc:  # reported by the copying thread in close()
                self.failures.append(exc)
            with self.lock:
                self.pending[id(buf)] -= 1
                done = self.pending[id(buf)] == 0
            if done:
                self.free.put(buf)

    def buffer(self) -> bytearray:
        return self.free.get()

    def submit(self, buf: bytearray, n: int) -> None:
        with self.lock:
            self.pending[id(buf)] = len(self.inboxes)
        for inbox in self.inboxes:
            inbox.put((buf, n))

    def give_back(self, buf: bytearray) -> None:
        self.free.put(buf)

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for thread in self.threads:
            thread.join()
        if self.failures:
            raise StoreError(f"hashing failed: {self.failures[0]}") from self.failures[0]


def _read_hashed(
    fd: int,
    *,
    algorithms: Sequence[str],
    chunk_size: int,
    size_hint: int,
    heartbeat: Callable[[int], None] | None,
    heartbeat_every: int,
    each: Callable[[bytearray, int, int], None] | None = None,
) -> Transfer:
    """Read ``fd`` to its end once, handing each chunk to the digests (on threads of their own for a
    large file) and then to ``each(buffer, length, offset)``. A failure to read raises
    :class:`SourceReadError`, so an ``OSError`` can only come from ``each``."""
    hashers = new_hashers(algorithms)
    digests: _InlineDigests | _ThreadedDigests
    if size_hint >= PIPELINE_THRESHOLD:
        digests = _ThreadedDigests(hashers, chunk_size)
    else:
        digests = _InlineDigests(hashers, chunk_size)
    offset = 0
    next_beat = heartbeat_every
    head = b""
    try:
        while True:
            buf = digests.buffer()
            try:
                n = os.readv(fd, [buf])
            except OSError as exc:  # the source's fault; an OSError from here on is the destination's
                digests.give_back(buf)
                raise SourceReadError("source", f"read failed at byte {offset}: {exc.strerror or exc}") from exc
            if n == 0:
                digests.give_back(buf)
                break
            if offset == 0:
                head = bytes(memoryview(buf)[:HEAD_BYTES])
            digests.submit(buf, n)
            if each is not None:
                each(buf, n, offset)
            offset += n
            if heartbeat and offset >= next_beat:
                heartbeat(offset)
                next_beat = offset + heartbeat_every
    finally:
        digests.close()
    return Transfer(offset, {name: h.hexdigest() for name, h in hashers.items()}, head)


def hashing_copy(
    source_fd: int,
    dest_fd: int,
    readback_fd: int,
    *,
    algorithms: Sequence[str] = (),
    chunk_size: int = 1 << 20,
    size_hint: int = 0,
    heartbeat: Callable[[int], None] | None = None,
    heartbeat_every: int = 64 << 20,
) -> Transfer:
    """Copy ``source_fd`` to ``dest_fd`` in one read pass, hashing with SHA-256 (and ``algorithms``),
    and compare every chunk read back through ``readback_fd`` with what was hashed. A large file's
    chunks are sent on to the disk as soon as they are compared, so that the disk writes while the
    rest is hashed, and the flush that follows (``fsync``, or ``syncfs`` after a batch) has little left.

    A failure to read the source raises :class:`SourceReadError`; ``OSError`` comes only from the
    destination's side, so the store can tell its own faults (disk full) from the source's.
    """
    scratch = _thread_buffer("readback", chunk_size)
    write_out = size_hint >= PIPELINE_THRESHOLD

    def write_and_compare(buf: bytearray, n: int, offset: int) -> None:
        _write_all(dest_fd, memoryview(buf)[:n])
        _readback(readback_fd, scratch, buf, n, offset)
        if write_out:
            start_writeback(dest_fd, offset, n)

    return _read_hashed(
        source_fd,
        algorithms=algorithms,
        chunk_size=chunk_size,
        size_hint=size_hint,
        heartbeat=heartbeat,
        heartbeat_every=heartbeat_every,
        each=write_and_compare,
    )


def hash_descriptor(
    fd: int,
    *,
    algorithms: Sequence[str] = (),
    chunk_size: int = 1 << 20,
    size_hint: int = 0,
    heartbeat: Callable[[int], None] | None = None,
    heartbeat_every: int = 64 << 20,
) -> Transfer:
    """Digest what ``fd`` holds from where it stands to its end, in one read pass (the digests on
    threads of their own for a large file, as in :func:`hashing_copy`). A failure to read raises
    :class:`SourceReadError`."""
    return _read_hashed(
        fd,
        algorithms=algorithms,
        chunk_size=chunk_size,
        size_hint=size_hint,
        heartbeat=heartbeat,
        heartbeat_every=heartbeat_every,
    )


def hash_file(path: str | os.PathLike[str], algorithms: Sequence[str] = (), chunk_size: int = 1 << 20) -> Transfer:
    """Digest a file as it is on disk now (fixity checks); a read error is the caller's ``OSError``."""
    hashers = new_hashers(algorithms)
    buf = bytearray(chunk_size)
    size = 0
    head = b""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while n := os.readv(fd, [buf]):
            view = memoryview(buf)[:n]
            if size == 0:
                head = bytes(view[:HEAD_BYTES])
            for hasher in hashers.values():
                hasher.update(view)
            size += n
    finally:
        os.close(fd)
    return Transfer(size, {name: h.hexdigest() for name, h in hashers.items()}, head)
