"""Reading uploads back while they arrive: once a piece is flushed to disk and its offset recorded,
a thread of this process reads the piece back from the partial file and adds it to the file's
digests, while the next piece is being received. At completion the store is handed digests of the
file as it lies on disk, and adopts it without reading it all again at the end.

Kept in this process's memory only (a hash's state cannot be saved): an upload whose pieces this
process did not all follow (the server restarted, or another server took some pieces) gets no
digests here, and the store reads the whole file itself at completion.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pipeline.storage.transfer import HEAD_BYTES, Transfer, new_hashers

logger = logging.getLogger(__name__)

BLOCK = 1 << 20
WAIT_SECONDS = 600.0  # at most this long for the last pieces' reading at completion

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _reader() -> ThreadPoolExecutor:
    """One reading thread for the process: pieces are read in the order they were recorded."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="upload-read-back")
        return _executor


@dataclass
class _Followed:
    offset: int
    hashers: dict[str, hashlib._Hash]
    head: bytes = b""
    last: Future[None] | None = field(default=None, repr=False)


class ReadBack:
    """The digests of the uploads this process follows, by upload ID."""

    def __init__(self, algorithms: Sequence[str] = ()) -> None:
        self.algorithms = tuple(algorithms)
        self._followed: dict[str, _Followed] = {}
        self._lock = threading.Lock()

    def follow(self, upload_id: str, path: str | os.PathLike[str], start: int, end: int) -> None:
        """Read bytes ``start`` to ``end`` of the upload's file (flushed and recorded) back soon."""
        with self._lock:
            followed = self._followed.get(upload_id)
            if followed is None:
                if start != 0:
                    return  # its beginning was received elsewhere: the store reads it at completion
                followed = self._followed[upload_id] = _Followed(0, new_hashers(self.algorithms))
            followed.last = _reader().submit(self._read, upload_id, followed, os.fspath(path), start, end)

    def _read(self, upload_id: str, followed: _Followed, path: str, start: int, end: int) -> None:
        if followed.offset != start:  # a piece was missed: these digests can no longer be had
            self.forget(upload_id)
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                offset = start
                while offset < end:
                    data = os.pread(fd, min(BLOCK, end - offset), offset)
                    if not data:
                        raise OSError(f"the file ends at byte {offset:,}, before {end:,}")
                    for hasher in followed.hashers.values():
                        hasher.update(data)
                    if offset < HEAD_BYTES:
                        followed.head = (followed.head + data)[:HEAD_BYTES]
                    offset += len(data)
            finally:
                os.close(fd)
        except OSError as exc:  # the store reads the whole file at completion instead
            logger.info("upload %s: not read back (%s); it is read in full at completion", upload_id, exc)
            self.forget(upload_id)
            return
        followed.offset = end

    def digests(self, upload_id: str, length: int) -> Transfer | None:
        """The digests of the upload's ``length`` bytes as read back from its file, once the
        reading has caught up; None when this process did not follow every piece."""
        with self._lock:
            followed = self._followed.get(upload_id)
        if followed is None or followed.last is None:
            return None
        try:
            followed.last.result(timeout=WAIT_SECONDS)
        except Exception:  # whatever went wrong, the store reads the file itself
            return None
        if followed.offset != length:
            return None
        return Transfer(length, {name: h.hexdigest() for name, h in followed.hashers.items()}, followed.head)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            self._followed.pop(upload_id, None)
