"""Content-addressed store on a local file system.

Layout: ``sha256/ab/abcd…`` under the store root (256 folders; ext4 indexes large folders);
writers use ``tmp/`` on the same file system.
An object is written to a temporary name, read back and compared chunk by chunk, fsynced, renamed
to its digest and made read-only; the rename is made durable by syncing the directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from ulid import ULID

from pipeline.errors import StoreError
from pipeline.storage.base import Heartbeat, StoredObject
from pipeline.storage.transfer import PIPELINE_THRESHOLD, hash_file, hashing_copy

HEX = frozenset("0123456789abcdef")


def _find_syncfs() -> Callable[[int], int] | None:
    try:
        syncfs: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
        return syncfs
    except (AttributeError, OSError):
        return None


_libc_syncfs = _find_syncfs()


def fsync_dir(path: str | bytes | os.PathLike[str]) -> None:
    """Make a rename or a new entry in the folder durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    name = "local"

    def __init__(self, root: Path, *, chunk_size: int = 1 << 20) -> None:
        self.root = root
        self.objects_dir = root / "sha256"
        self.tmp_dir = root / "tmp"
        self.chunk_size = chunk_size
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = str(self.tmp_dir)
        self._folders: set[str] = set()

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not HEX.issuperset(sha256):
            raise StoreError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.objects_dir / sha256[:2] / sha256

    def key(self, sha256: str) -> str:
        return str(self.path(sha256).relative_to(self.root))

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def put(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
    ) -> StoredObject:
        # Plain string paths here: this runs once per file, and pathlib's parsing shows in profiles.
        tmp = os.path.join(self._tmp, f"{ULID()}.part")
        size_hint = os.fstat(source_fd).st_size
        if size_hint >= PIPELINE_THRESHOLD:
            with contextlib.suppress(OSError):
                os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        # One descriptor both writes and reads back: the copy is compared with what was hashed.
        dest_fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            transfer = hashing_copy(
                source_fd,
                dest_fd,
                dest_fd,
                algorithms=algorithms,
                chunk_size=self.chunk_size,
                size_hint=size_hint,
                heartbeat=heartbeat,
            )
            os.fchmod(dest_fd, 0o444)
            if durable:
                os.fsync(dest_fd)
        except BaseException:
            os.close(dest_fd)
            os.unlink(tmp)
            raise
        os.close(dest_fd)
        sha256 = transfer.digests["sha256"]
        extra = {name: value for name, value in transfer.digests.items() if name != "sha256"}
        final = str(self.path(sha256))
        existed = repaired = False
        try:
            try:
                found = os.stat(final).st_size
            except FileNotFoundError:
                pass
            else:
                existed = True
                if found == transfer.size:
                    os.unlink(tmp)
                    return StoredObject(sha256, transfer.size, self.key(sha256), extra, transfer.head, True)
                # A damaged object (truncated, overwritten) sits under this digest: replace it with
                # the verified copy just made. Fixity reports how it was found.
                repaired = True
            folder = os.path.dirname(final)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            os.replace(tmp, final)
            if durable:
                fsync_dir(folder)
            found = os.stat(final).st_size
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise StoreError(f"cannot file object {sha256}: {exc}") from exc
        if found != transfer.size:
            raise StoreError(f"object {sha256} has {found} bytes after filing, expected {transfer.size}")
        return StoredObject(sha256, transfer.size, self.key(sha256), extra, transfer.head, existed, repaired)

    def sync(self) -> None:
        """Flush the whole store file system once (cheaper than an fsync per object in a batch)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if _libc_syncfs is None or _libc_syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)

    def digest(self, sha256: str) -> tuple[str, int]:
        transfer = hash_file(self.path(sha256), chunk_size=self.chunk_size)
        return transfer.digests["sha256"], transfer.size

    def objects(self) -> Iterator[str]:
        for path in self.objects_dir.glob("*/*"):
            if path.is_file() and len(path.name) == 64:
                yield path.name

    def remove_partials(self, older_than: float) -> int:
        cutoff = time.time() - older_than
        removed = 0
        for path in self.tmp_dir.glob("*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
