"""Running an ffmpeg command with progress, a real deadline and the words it said when it failed.

ffmpeg is started in a process group of its own with ``-progress pipe:1 -nostats``: standard output
then carries ``key=value`` progress blocks, of which ``out_time_us`` (microseconds of output
written) is turned into a percentage of the expected duration. Standard error is read at the same
time on its own thread (so neither pipe can fill and stall ffmpeg) and its last lines are kept.
Past the deadline the whole group is killed, which also stops anything ffmpeg started.
The progress callback is called on the caller's thread, with ever larger percentages.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from pipeline.transcode.errors import TranscodeError, TranscodeTimeoutError

TAIL_LINES = 20
_PROGRESS_ARGS = ("-progress", "pipe:1", "-nostats")


@dataclass(frozen=True)
class TranscodeRun:
    argv: tuple[str, ...]  # as run, with the progress options
    returncode: int
    elapsed: float  # seconds
    stderr_tail: tuple[str, ...]  # the last lines ffmpeg wrote to standard error (warnings)


def run_transcode(
    argv: Sequence[str],
    *,
    duration: float | None,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    profile: str | None = None,
) -> TranscodeRun:
    """Run the ffmpeg command ``argv`` to completion within ``timeout`` seconds.

    ``on_progress`` gets the percentage (0-100) of ``duration`` written so far, each value larger
    than the last, and 100 when ffmpeg finished well; without a duration only the final 100 is
    reported. Raises :class:`TranscodeTimeoutError` when the deadline passes and
    :class:`TranscodeError` with the last lines of standard error when ffmpeg fails; ``profile``
    names the profile in those errors.
    """
    args = [argv[0], *_PROGRESS_ARGS, *(arg for arg in argv[1:] if arg != "-stats")]
    started = time.monotonic()
    deadline = started + timeout
    try:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise TranscodeError(profile, None, reason=f"{argv[0]} is not installed") from exc
    except OSError as exc:
        raise TranscodeError(profile, None, reason=f"{argv[0]} cannot be started: {exc.strerror or exc}") from exc

    assert process.stdout is not None and process.stderr is not None  # both are pipes
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    updates: queue.Queue[float | None] = queue.Queue()
    readers = [
        threading.Thread(target=_read_stderr, args=(process.stderr, tail), daemon=True),
        threading.Thread(target=_read_progress, args=(process.stdout, updates), daemon=True),
    ]
    for reader in readers:
        reader.start()

    reported = -1.0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Expired
            try:
                out_seconds = updates.get(timeout=remaining)
            except queue.Empty:
                raise _Expired from None
            if out_seconds is None:
                break  # ffmpeg closed its standard output: it is finishing
            if on_progress is not None and duration:
                percent = min(100.0, round(100.0 * out_seconds / duration, 1))
                if percent > reported and percent < 100.0:
                    reported = percent
                    on_progress(percent)
        returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except (_Expired, subprocess.TimeoutExpired):
        _kill(process)
        _join(readers, process)
        raise TranscodeTimeoutError(profile, timeout, tuple(tail)) from None
    except BaseException:
        _kill(process)  # the callback failed or the caller was interrupted: leave nothing running
        _join(readers, process)
        raise
    _join(readers, process)
    lines = tuple(tail)
    if returncode != 0:
        raise TranscodeError(profile, returncode, lines)
    if on_progress is not None:
        on_progress(100.0)
    return TranscodeRun(tuple(args), returncode, round(time.monotonic() - started, 3), lines)


class _Expired(Exception):
    """The deadline passed while waiting for ffmpeg."""


def _read_progress(stream: IO[bytes], updates: queue.Queue[float | None]) -> None:
    try:
        for seconds in _out_times(stream):
            updates.put(seconds)
    finally:
        updates.put(None)


def _out_times(lines: Iterable[bytes]) -> Iterable[float]:
    """Seconds of output written, from each ``out_time_us=`` line of ffmpeg's progress blocks."""
    for raw in lines:
        key, _, value = raw.decode("ascii", "replace").strip().partition("=")
        if key == "out_time_us":
            try:
                micros = int(value)
            except ValueError:
                continue  # "N/A" before the first frame is written
            if micros >= 0:
                yield micros / 1_000_000


def _read_stderr(stream: IO[bytes], tail: deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            tail.append(line)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _join(readers: Sequence[threading.Thread], process: subprocess.Popen[bytes]) -> None:
    """Wait for the reading threads, then close ffmpeg's pipes (their file objects stay open otherwise)."""
    for reader in readers:
        reader.join(timeout=5)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None and not any(reader.is_alive() for reader in readers):
            pipe.close()
