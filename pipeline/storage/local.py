"""Content-addressed store on a local file system.

Layout: ``sha256/ab/abcd…`` under the store root (256 folders; ext4 indexes large folders);
writers use ``tmp/`` on the same file system.
An object is written to an unnamed temporary file (``O_TMPFILE``; a named ``tmp/*.part`` where the
file system has none), read back and compared chunk by chunk, made read-only, fsynced, and only then
given its digest as its name (a link, or a rename over a damaged copy); the new name is made durable
by syncing the directory.

A file that is the pipeline's own (an upload received in full, which nobody writes again) is not
copied but *adopted*: given a name in ``tmp/``, read once and hashed, made read-only and then named
by its digest like a copy; its bytes are the ones that were flushed to disk as they arrived.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from ulid import ULID

from pipeline.errors import DigestMismatch, StoreError, StoreFullError, store_error
from pipeline.storage import libc
from pipeline.storage.base import Heartbeat, StoredObject
from pipeline.storage.transfer import PIPELINE_THRESHOLD, Transfer, hash_descriptor, hash_file, hashing_copy

HEX = frozenset("0123456789abcdef")
# Bytes kept free on the store's file system (its folders, the catalog's journal when they share a disk).
RESERVE = 1 << 20
# A derivative being made in tmp/ is rewritten or read at least this often while it is alive.
LEFTOVERS_AFTER = 24 * 3600.0


_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


def _link_unnamed(fd: int, path: str) -> bool:
    """Give the unnamed file open on ``fd`` the name ``path``; False when the name is taken.

    Through its /proc link, followed (``os.link`` would link the /proc entry itself).
    """
    assert libc.linkat is not None
    source = f"/proc/self/fd/{fd}".encode()
    if libc.linkat(_AT_FDCWD, source, _AT_FDCWD, os.fsencode(path), _AT_SYMLINK_FOLLOW) == 0:
        return True
    code = ctypes.get_errno()
    if code == errno.EEXIST:
        return False
    raise OSError(code, os.strerror(code), path)


def fsync_dir(path: str | bytes | os.PathLike[str]) -> None:
    """Make a rename or a new entry in the folder durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_expected(transfer: Transfer, expected: str | None) -> None:
    found = transfer.digests["sha256"]
    if expected is not None and found != expected:
        raise DigestMismatch(
            "source", f"the file's SHA-256 is {found}, not the declared {expected}; it was changed on the way"
        )


class LocalStore:
    name = "local"

    def __init__(self, root: Path, *, chunk_size: int = 1 << 20) -> None:
        self.root = root
        self.objects_dir = root / "sha256"
        self.tmp_dir = root / "tmp"
        self.chunk_size = chunk_size
        # Folders 0750 and objects 0440: the store's account (and the data group) read, nobody else.
        self.objects_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self.tmp_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._tmp = str(self.tmp_dir)
        self._objects = str(self.objects_dir)
        self._folders: set[str] = set()
        # An unnamed file is named through /proc (linkat with AT_EMPTY_PATH needs a capability).
        self._unnamed = hasattr(os, "O_TMPFILE") and libc.linkat is not None and os.path.isdir("/proc/self/fd")

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
        expect_sha256: str | None = None,
    ) -> StoredObject:
        """Copy, verify and file one object. The store's own failures (full, read-only, I/O errors)
        raise :class:`StoreError` and leave nothing behind; a source that cannot be read raises
        :class:`~pipeline.errors.SourceReadError`, one whose SHA-256 is not ``expect_sha256``
        :class:`~pipeline.errors.DigestMismatch` (nothing filed)."""
        # Plain string paths here: this runs once per file, and pathlib's parsing shows in profiles.
        size_hint = os.fstat(source_fd).st_size
        self._check_room(size_hint)
        if size_hint >= PIPELINE_THRESHOLD:
            with contextlib.suppress(OSError):
                os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        # One descriptor both writes and reads back: the copy is compared with what was hashed.
        try:
            dest_fd, tmp = self._create_temporary()
        except OSError as exc:
            raise store_error(exc, "creating a new object") from exc
        try:
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
                _check_expected(transfer, expect_sha256)
                os.fchmod(dest_fd, 0o440)
                if durable:
                    os.fsync(dest_fd)
            except BaseException as exc:
                if tmp is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                if isinstance(exc, OSError):  # hashing_copy raises OSError only for the store's side
                    raise store_error(exc, "writing an object") from exc
                raise
            return self._file(dest_fd, tmp, transfer, durable=durable)
        finally:
            os.close(dest_fd)

    def adopt(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
        expect_sha256: str | None = None,
        read_back: Transfer | None = None,
    ) -> StoredObject | None:
        """File the pipeline's own file open on ``source_fd`` without copying it: linked into
        ``tmp/``, read once and hashed (compared with ``expect_sha256`` when given), made read-only
        and named by its digest. ``read_back``: its digests, computed by reading this file back as
        its pieces reached the disk (an upload's); when they cover its size and every algorithm,
        the file is not read again. The caller guarantees nobody writes to it again and removes
        its other name once it is catalogued. None when it cannot be linked here (another file
        system): :meth:`put` copies it instead. Errors as :meth:`put`'s."""
        if libc.linkat is None:
            return None
        # Not *.part: its time is the last piece's, and remove_partials must not take it meanwhile.
        tmp = os.path.join(self._tmp, f"{ULID()}.adopting")
        try:
            if not _link_unnamed(source_fd, tmp):
                raise FileExistsError(errno.EEXIST, "temporary name taken", tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOENT):
                return None  # another file system (or one without links): copy instead
            raise store_error(exc, "naming an object to adopt") from exc
        try:
            size = os.fstat(source_fd).st_size
            wanted = {"sha256", *algorithms}
            if read_back is not None and read_back.size == size and wanted <= read_back.digests.keys():
                transfer = Transfer(size, {k: v for k, v in read_back.digests.items() if k in wanted}, read_back.head)
            else:
                os.lseek(source_fd, 0, os.SEEK_SET)
                with contextlib.suppress(OSError):
                    os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                transfer = hash_descriptor(
                    source_fd, algorithms=algorithms, chunk_size=self.chunk_size, size_hint=size, heartbeat=heartbeat
                )
            _check_expected(transfer, expect_sha256)
            try:
                os.fchmod(source_fd, 0o440)
                if durable:
                    os.fsync(source_fd)  # its bytes were flushed as they arrived; this is its mode
            except OSError as exc:
                raise store_error(exc, "adopting an object") from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return self._file(source_fd, tmp, transfer, durable=durable)

    def _check_room(self, size: int) -> None:
        """Refuse, before writing anything, an object the store's file system has no room for."""
        try:
            info = os.statvfs(self._tmp)
        except OSError:
            return  # the write itself will say what is wrong
        free = info.f_bavail * info.f_frsize
        if size + RESERVE > free:
            raise StoreFullError(
                f"store full: {size:,} bytes to store, {max(free - RESERVE, 0):,} bytes free in {self.root.name}/"
            )

    def _create_temporary(self) -> tuple[int, str | None]:
        """A new file to copy into: unnamed (``O_TMPFILE``) where the system allows it, so creating
        it takes no lock on ``tmp/`` and a writer that dies leaves nothing behind; else a named
        ``tmp/*.part``. Returns the descriptor and the name (None when unnamed)."""
        if self._unnamed:
            try:
                return os.open(self._tmp, os.O_RDWR | os.O_TMPFILE | os.O_CLOEXEC, 0o600), None
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                self._unnamed = False  # this file system has no unnamed files
        tmp = os.path.join(self._tmp, f"{ULID()}.part")
        return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp

    def _file(self, fd: int, tmp: str | None, transfer: Transfer, *, durable: bool) -> StoredObject:
        """Give the verified copy open on ``fd`` (named ``tmp``, or unnamed) its digest's name."""
        sha256 = transfer.digests["sha256"]  # hashlib's hex digest: no need to check its form
        extra = {name: value for name, value in transfer.digests.items() if name != "sha256"}
        folder = os.path.join(self._objects, sha256[:2])
        final = os.path.join(folder, sha256)
        key = f"sha256/{sha256[:2]}/{sha256}"
        existed = repaired = False
        try:
            try:
                found = os.stat(final).st_size
            except FileNotFoundError:
                pass
            else:
                existed = True
                if found == transfer.size:
                    if tmp is not None:
                        os.unlink(tmp)
                    return StoredObject(sha256, transfer.size, key, extra, transfer.head, True)
                # A damaged object (truncated, overwritten) sits under this digest: replace it with
                # the verified copy just made. Fixity reports how it was found.
                repaired = True
            if folder not in self._folders:
                os.makedirs(folder, mode=0o750, exist_ok=True)
                self._folders.add(folder)
            unnamed = tmp is None
            if unnamed and (repaired or not _link_unnamed(fd, final)):
                # The name is taken (a damaged copy, or a writer that filed the same bytes just
                # now): name the copy in tmp/ first, then swap it in atomically.
                tmp = os.path.join(self._tmp, f"{ULID()}.part")
                if not _link_unnamed(fd, tmp):
                    raise FileExistsError(errno.EEXIST, "temporary name taken", tmp)
            if tmp is not None:
                os.replace(tmp, final)
                tmp = None
            if durable:
                if unnamed:
                    os.fsync(fd)  # its link count, now that it has a name
                fsync_dir(folder)
            found = os.stat(final).st_size
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise store_error(exc, f"filing object {sha256}") from exc
        if found != transfer.size:
            raise StoreError(f"object {sha256} has {found} bytes after filing, expected {transfer.size}")
        return StoredObject(sha256, transfer.size, key, extra, transfer.head, existed, repaired)

    def sync(self) -> None:
        """Flush the whole store file system once (cheaper than an fsync per object in a batch)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if libc.syncfs is None or libc.syncfs(fd) != 0:
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

    def remove_partials(self, older_than: float, *, leftovers_after: float = LEFTOVERS_AFTER) -> int:
        """Delete what writers that died left in ``tmp/``: copies (``*.part``) untouched for
        ``older_than`` seconds, and anything else (a transcode's output) untouched for
        ``leftovers_after``, long enough that no live transcode or verification is cut short."""
        now = time.time()
        removed = 0
        for path in self.tmp_dir.iterdir():
            limit = older_than if path.name.endswith(".part") else leftovers_after
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < now - limit:
                    path.unlink()
                    removed += 1
        return removed
