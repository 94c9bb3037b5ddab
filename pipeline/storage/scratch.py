"""A worker's own folder of originals fetched from the object store, for the programs that need a
file on disk (ffmpeg, exiftool, the disc writer) on a machine that shares no disk with the store.

``Scratch(root, cap, store)``; ``with scratch.local(sha256, size) as path:`` yields a path to a
read-only file holding exactly the object's bytes:

- a store whose objects are files already (:class:`~pipeline.storage.local.LocalStore`) yields its
  own path, nothing copied;
- otherwise the object is downloaded once into ``root/ab/<hex>`` while its SHA-256 is computed, and
  filed under its name only when the digest is the one asked for (a copy that differs is a
  :class:`~pipeline.errors.StoreError` naming the object, and nothing is kept);
- while a path is in use it is pinned (a shared ``flock`` on the file); the folder is kept under
  ``cap`` bytes by removing the least recently used files that no one holds, before a download
  that would go over it. An object that cannot fit, even with every unpinned file removed, raises
  :class:`ScratchFullError` (a system fault: retried later, when other work has let go of its files).

Several processes may share one folder: a per-object lock file makes one of them download while the
others wait for its result, and removal takes an exclusive lock it does not wait for, so a file in
use is never removed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.storage.base import ObjectStore
from pipeline.storage.local import LocalStore

CHUNK = 1 << 20
_HEX = re.compile(r"[0-9a-f]{64}")


class ScratchFullError(StoreError):
    """The scratch folder cannot take an object now: every file in it is in use, or the object is
    larger than the folder's cap."""


class Scratch:
    def __init__(self, root: Path, cap: int, store: ObjectStore) -> None:
        self.root = root
        self.cap = cap
        self.store = store
        self.locks = root / ".locks"

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    @contextlib.contextmanager
    def local(self, sha256: str, size: int) -> Iterator[Path]:
        """A path to the object's bytes on this machine's disk, pinned until the block ends."""
        if not _HEX.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in hexadecimal: {sha256!r}")
        if isinstance(self.store, LocalStore):
            yield self.store.path(sha256)
            return
        path = self.path(sha256)
        pin = self._pinned(path)
        if pin is None:
            with self._object_lock(sha256):
                pin = self._pinned(path)  # another process may have fetched it meanwhile
                if pin is None:
                    self._make_room(size)
                    self._download(sha256, path)
                    pin = self._pinned(path)
                    if pin is None:
                        raise StoreError(f"{self.store.key(sha256)}: fetched, then gone from {self.root}")
        try:
            os.utime(pin)  # its use, for the least-recently-used order
            yield path
        finally:
            os.close(pin)

    def used(self) -> int:
        """Bytes of the objects held now."""
        return sum(size for _, size, _ in self._files())

    # -------------------------------------------------------------------------------------- inside
    def _pinned(self, path: Path) -> int | None:
        """An open descriptor holding a shared lock on ``path``, or None when it is not there."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink == 0:  # removed between the open and the lock
            os.close(fd)
            return None
        return fd

    @contextlib.contextmanager
    def _object_lock(self, sha256: str) -> Iterator[None]:
        self.locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.locks / sha256, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for folder in self.root.glob("[0-9a-f][0-9a-f]"):
            for entry in os.scandir(folder):
                if _HEX.fullmatch(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        info = entry.stat()
                        found.append((info.st_mtime, info.st_size, Path(entry.path)))
        return found

    def _make_room(self, size: int) -> None:
        if size > self.cap:
            raise ScratchFullError(
                f"an object of {size:,} bytes is larger than the scratch "
                f"folder's cap of {self.cap:,} bytes ({self.root})"
            )
        files = sorted(self._files())  # least recently used first
        used = sum(n for _, n, _ in files)
        for _, n, path in files:
            if used + size <= self.cap:
                return
            if self._remove_unless_used(path):
                used -= n
        if used + size > self.cap:
            raise ScratchFullError(
                f"no room for {size:,} bytes in {self.root}: {used:,} of {self.cap:,} bytes are in use by running work"
            )

    @staticmethod
    def _remove_unless_used(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # pinned by someone's work
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return True
        finally:
            os.close(fd)

    def _download(self, sha256: str, path: Path) -> None:
        key = self.store.key(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{sha256}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with self.store.open(sha256) as source, partial.open("wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != sha256:
                raise StoreError(f"{key}: the copy fetched from the store has SHA-256 {digest.hexdigest()}; not kept")
            partial.chmod(0o440)
            partial.rename(path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ScratchFullError(f"the disk of {self.root} is full while fetching {key}") from exc
            raise StoreError(f"{key}: could not be fetched into {self.root}: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
