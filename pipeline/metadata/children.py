"""Starting the long-running children of the extractors (the PyAV reader, exiftool) so that they end
with this process, however it ends.

exiftool in ``-stay_open`` mode waits for ever on a closed input, and a reader stuck in a hung
demuxer never reads its input again; a worker killed without running its exit handlers would leave
both behind. So on Linux a child is started under util-linux's ``setpriv --pdeathsig KILL``: the
kernel kills it when the thread that started it ends. That thread is one that lives as long as the
process (a short-lived request thread would take the child with it), so every child is started
from it.
"""

from __future__ import annotations

import functools
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
_Request = tuple[Callable[[], Any], "queue.SimpleQueue[tuple[Any, BaseException | None]]"]
_lock = threading.Lock()
_requests: queue.SimpleQueue[_Request] | None = None
_owner = 0


def start_child(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **popen)``, the child killed by the kernel when this process ends."""
    command = [_SETPRIV, "--pdeathsig", "KILL", "--", *args] if _SETPRIV else list(args)
    done: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
    _starter().put((functools.partial(subprocess.Popen, command, **popen), done))
    process, error = done.get()
    if error is not None:
        raise error
    assert isinstance(process, subprocess.Popen)
    return process


def end_child(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` unless it has ended already, reap it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def _starter() -> queue.SimpleQueue[_Request]:
    global _requests, _owner
    with _lock:
        if _requests is None or _owner != os.getpid():
            _requests, _owner = queue.SimpleQueue(), os.getpid()
            threading.Thread(target=_serve, args=(_requests,), name="child-starter", daemon=True).start()
        return _requests


def _serve(requests: queue.SimpleQueue[_Request]) -> None:
    while True:
        start, done = requests.get()
        try:
            done.put((start(), None))
        except BaseException as exc:  # handed to the caller, who raises it
            done.put((None, exc))


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)
