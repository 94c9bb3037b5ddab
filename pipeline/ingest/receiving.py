"""Receiving a piece of an upload while the next bytes arrive: the buffers handed over are written
by one thread and then hashed by another, in order, so the caller (the web server's event loop)
only queues them and goes on reading the network. It waits only when ``depth`` buffers are
waiting already (the disk or the hashing is behind), which slows the sender down in turn.

The writer and the checksum are the piece's own (:meth:`~pipeline.ingest.uploads.Piece.write`,
:meth:`~pipeline.ingest.uploads.Piece.check`); the first error either meets is raised to the caller
at its next call, and the rest of the buffers are dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence

Buffers = Sequence[bytes]
Inbox = queue.Queue[Buffers | None]
DEPTH = 16  # buffers waiting to be written (256 KiB each in the web server: 4 MiB)
_END = None


class Receiving:
    """One piece's buffers on their way to ``write`` then ``check``, on two threads of their own."""

    def __init__(self, write: Callable[[Buffers], None], check: Callable[[Buffers], None], depth: int = DEPTH) -> None:
        self.to_write: Inbox = queue.Queue(depth)
        self.to_check: Inbox = queue.Queue(depth)
        self.failure: BaseException | None = None
        self.threads = [
            threading.Thread(target=self._run, args=(write, self.to_write, self.to_check), name="piece-write"),
            threading.Thread(target=self._run, args=(check, self.to_check, None), name="piece-check"),
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, step: Callable[[Buffers], None], inbox: Inbox, then: Inbox | None) -> None:
        while (buffers := inbox.get()) is not _END:
            if self.failure is not None:
                continue  # drain, so nobody waits on a full queue
            try:
                step(buffers)
            except BaseException as exc:  # raised to the caller at its next call
                self.failure = exc
                continue
            if then is not None:
                then.put(buffers)
        if then is not None:
            then.put(_END)

    def offer(self, buffers: Buffers) -> bool:
        """Queue ``buffers`` if there is room (True); False when the caller must :meth:`put` them
        (which may wait). Raises the first error met so far."""
        self._raise()
        try:
            self.to_write.put_nowait(buffers)
        except queue.Full:
            return False
        return True

    def put(self, buffers: Buffers) -> None:
        """Queue ``buffers``, waiting for room (call it on a thread that may block)."""
        self._raise()
        self.to_write.put(buffers)

    def finish(self) -> None:
        """Wait until every buffer queued is written and hashed (may block); raises the first error."""
        self.to_write.put(_END)
        for thread in self.threads:
            thread.join()
        self._raise()

    def stop(self) -> None:
        """Wait for the threads to end, whatever happened (may block); errors are left unraised."""
        if any(thread.is_alive() for thread in self.threads):
            self.failure = self.failure or RuntimeError("stopped")
            self.to_write.put(_END)
            for thread in self.threads:
                thread.join()

    def _raise(self) -> None:
        if self.failure is not None:
            raise self.failure
