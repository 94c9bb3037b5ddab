"""Reading files with libavformat in-process (PyAV) without letting a hostile file hang the caller.

ffprobe and ffmpeg cost two program starts per file; PyAV opens a file in about a millisecond. But
a file can hang a demuxer (a named pipe that never delivers a byte blocks in ``open`` itself), and
a thread stuck inside libav cannot be stopped. So the reading happens in one long-running child
(:mod:`pipeline.metadata.avchild`) shared by every file a process probes: one program start per
worker, not per file. A request that outlives its time-out gets the child killed and a fresh one
started for the next file; the file is reported as having timed out, like ffprobe's did.

:class:`AvReader` is thread-safe (one request at a time, under a lock), starts its child lazily,
restarts it when it died, forgets a child inherited through ``fork`` and closes its child at exit
(the child also dies with this process however it ends: :mod:`pipeline.metadata.children`).
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.metadata.children import end_child, start_child
from pipeline.stage.tools import ToolError, ToolMissingError, ToolTimeoutError

PROGRAM = "PyAV"
START_TIMEOUT = 30.0  # seconds for a child to import av and say it is ready
_CHILD = Path(__file__).with_name("avchild.py")
_readers: weakref.WeakSet[AvReader] = weakref.WeakSet()


class ReaderCrashedError(ToolError):
    """The child died while reading a file: the file crashed the demuxer (or the child was killed)."""


@dataclass(frozen=True)
class AvRead:
    """What the child said about one file."""

    probe: dict[str, Any] | None  # ffprobe-shaped; None when the file could not be opened
    failure: tuple[str, ...] = ()  # libav's error lines when it could not be opened
    check: tuple[str, ...] | None = None  # error lines of the packet pass; None when it was not run
    check_timeout: float | None = None  # the time-out the packet pass ran past, when it did


class AvReader:
    """One child process reading files with PyAV, for every thread of this process."""

    def __init__(self, command: tuple[str, ...] | None = None) -> None:
        self._command = command or (sys.executable, "-P", str(_CHILD))
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        self._buffer = b""
        self.version: str | None = None  # "PyAV 18.1.0 (libavformat 62.12.102)" once a child has started
        self.started = 0  # children started so far
        _readers.add(self)

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def read(self, path: Path, *, still: bool, check: bool, timeout: float) -> AvRead:
        """Open ``path``, describe it and, with ``check``, read every packet; each step within ``timeout``.

        Raises :class:`ToolTimeoutError` when opening and describing the file ran past ``timeout``
        (the child is killed), :class:`ReaderCrashedError` when the child died reading it twice, and
        :class:`ToolMissingError` when PyAV is not installed.
        """
        with self._lock:
            try:
                return self._read(path, still=still, check=check, timeout=timeout)
            except ReaderCrashedError:
                # Killed before this file reached it, or by this file: a second try tells them apart.
                return self._read(path, still=still, check=check, timeout=timeout)

    def _read(self, path: Path, *, still: bool, check: bool, timeout: float) -> AvRead:
        process = self._running()
        self._send(process, {"path": str(path), "still": still, "check": check})
        first = self._answer(process, timeout)
        if "probe" not in first:
            return AvRead(None, tuple(str(line) for line in first.get("failed") or ()))
        probe = first["probe"]
        media = any(stream.get("codec_type") in ("video", "audio") for stream in probe.get("streams") or ())
        if not (check and media):
            return AvRead(probe)
        try:
            second = self._answer(process, timeout)
        except ToolTimeoutError as exc:
            return AvRead(probe, check_timeout=exc.timeout)
        return AvRead(probe, check=tuple(str(line) for line in second.get("check") or ()))

    def close(self) -> None:
        """Stop the child (it exits when its input closes; killed if it does not within a second)."""
        with self._lock:
            self._stop(gently=True)

    # ------------------------------------------------------------------------------------ the child
    def _running(self) -> subprocess.Popen[bytes]:
        if self._owner != os.getpid():  # inherited through fork: the child answers the parent, not us
            self._process, self._owner, self._buffer = None, os.getpid(), b""
        process = self._process
        if process is not None and process.poll() is None:
            return process
        self._stop(gently=False)
        if importlib.util.find_spec("av") is None and self._command[-1] == str(_CHILD):
            raise ToolMissingError(PROGRAM, "is not installed (the Python package av)")
        if shutil.which(self._command[0]) is None:
            raise ToolError(PROGRAM, f"cannot be started: {self._command[0]} is not there")
        try:
            process = start_child(
                self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
            )
        except OSError as exc:
            raise ToolError(PROGRAM, f"cannot be started: {exc.strerror or exc}") from exc
        self._process, self._buffer = process, b""
        self.started += 1
        try:
            ready = self._answer(process, START_TIMEOUT)
        except ToolError as exc:
            raise ToolError(PROGRAM, f"did not start: {exc.reason}") from exc
        self.version = str(ready.get("ready") or f"{PROGRAM} (version unknown)")
        return process

    def _send(self, process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps(message).encode("ascii") + b"\n")
            process.stdin.flush()
        except OSError as exc:
            self._stop(gently=False)
            raise ReaderCrashedError(PROGRAM, f"stopped before reading the file ({exc.strerror or exc})") from exc

    def _answer(self, process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
        """The child's next line, waited for at most ``timeout`` seconds; the child is killed after that."""
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self._stop(gently=False)
                    raise ToolTimeoutError(PROGRAM, timeout)
                chunk = os.read(process.stdout.fileno(), 1 << 16)
                if not chunk:
                    status = process.wait()
                    self._stop(gently=False)
                    raise ReaderCrashedError(PROGRAM, f"stopped with status {status} while reading")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise ToolError(PROGRAM, "answered something that is not an object")
        return answer

    def _stop(self, *, gently: bool) -> None:
        process, self._process, self._buffer = self._process, None, b""
        if process is None or self._owner != os.getpid():
            return
        if gently and process.poll() is None and process.stdin is not None:
            try:
                process.stdin.close()
                process.wait(timeout=1.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        end_child(process)


_shared: AvReader | None = None
_shared_lock = threading.Lock()


def shared_reader() -> AvReader:
    """The reader every extractor of this process uses unless given its own."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AvReader()
        return _shared


@atexit.register
def _close_all() -> None:
    for reader in list(_readers):
        reader.close()


def _after_fork() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    for reader in list(_readers):
        reader._lock = threading.Lock()  # a lock held by another thread at the fork is never released here


os.register_at_fork(after_in_child=_after_fork)
