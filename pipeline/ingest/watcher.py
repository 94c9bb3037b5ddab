"""The watcher: detect, filter, wait for stability, record the sighting, enqueue. Nothing else.

File-system events are hints. A file is handed on once its size and mtime have stayed unchanged for
the quiet period; the inbox is rescanned at start, periodically and after the kernel's inotify
queue overflows, so a burst that outruns the event queue loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import DirCreatedEvent, DirMovedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from pipeline.errors import TransientError
from pipeline.ingest.intake import Arrival, IntakeContext, mark_queued, open_sightings
from pipeline.ingest.scan import dock_of, walk
from pipeline.stage.names import is_temporary

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[str]], None]


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    since: float  # monotonic time of the last change we saw


class StabilityTracker:
    """Tracks candidate files until their size and mtime have been quiet for ``quiet_period``."""

    def __init__(self, quiet_period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_period = quiet_period
        self.clock = clock
        self._candidates: dict[bytes, _Candidate | None] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._candidates)

    def touch(self, path: bytes, *, changed: bool = True) -> None:
        """A hint that ``path`` may have changed; a rescan passes ``changed=False``."""
        with self._lock:
            if changed or path not in self._candidates:
                self._candidates[path] = None

    def ready(self) -> list[bytes]:
        """Stat every candidate; return (and forget) those that have been stable long enough."""
        with self._lock:
            snapshot = dict(self._candidates)
        now = self.clock()
        wall_ns = time.time_ns()
        done: list[bytes] = []
        gone: list[bytes] = []
        updates: dict[bytes, _Candidate] = {}
        for path, seen in snapshot.items():
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                gone.append(path)
                continue
            if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                # New or changed. A file last written longer ago than the quiet period is quiet already.
                quiet_already = wall_ns - st.st_mtime_ns >= self.quiet_period * 1e9
                seen = updates[path] = _Candidate(
                    st.st_size, st.st_mtime_ns, now - self.quiet_period if quiet_already else now
                )
            if now - seen.since >= self.quiet_period:
                done.append(path)
        with self._lock:
            for path, candidate in updates.items():
                if path in self._candidates and self._candidates[path] is snapshot[path]:
                    self._candidates[path] = candidate
            # A path touched again while we looked stays for another look.
            done = [p for p in done if self._candidates.get(p, snapshot[p]) in (snapshot[p], updates.get(p))]
            for path in (*done, *gone):
                if self._candidates.get(path) in (snapshot[path], updates.get(path)):
                    self._candidates.pop(path, None)
        return done


class _Hints(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        if getattr(event, "dest_path", ""):
            paths = [event.dest_path]
        for path in paths:
            raw = os.fsencode(path)
            if isinstance(event, DirCreatedEvent | DirMovedEvent):
                self.watcher.rescan_request(raw)  # a folder moved in whole brings no file events
            elif not event.is_directory:
                self.watcher.hint(raw)


class _OverflowAlarm(logging.Handler):
    """watchdog only logs an inotify queue overflow; hearing it triggers a full rescan."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self.watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.watcher.rescan_request(os.fsencode(self.watcher.inbox))


class Watcher:
    def __init__(
        self,
        ctx: IntakeContext,
        enqueue: Enqueue,
        *,
        quiet_period: float,
        rescan_interval: float,
        ignore_patterns: Sequence[str],
        source_policy: str,
        polling: bool = False,
        poll_interval: float = 2.0,
        tick: float = 0.2,
        batch: int = 64,
    ) -> None:
        self.ctx = ctx
        self.enqueue = enqueue
        self.inbox: Path = ctx.inbox_dir
        self.tracker = StabilityTracker(quiet_period)
        self.rescan_interval = rescan_interval
        self.ignore_patterns = tuple(ignore_patterns)
        self.source_policy = source_policy
        self.polling = polling
        self.poll_interval = poll_interval
        self.tick = tick
        self.batch = batch
        self._rescans: set[bytes] = set()
        self._rescan_lock = threading.Lock()
        self.handed_on = 0

    # Hints from the observer thread ---------------------------------------------------------------
    def hint(self, path: bytes) -> None:
        if not is_temporary(os.path.basename(path), self.ignore_patterns) and not self._hidden(path):
            self.tracker.touch(path)

    def rescan_request(self, folder: bytes) -> None:
        with self._rescan_lock:
            self._rescans.add(folder)

    def _hidden(self, path: bytes) -> bool:
        inbox = os.fsencode(self.inbox)
        parts = path[len(inbox) + 1 :].split(b"/")[:-1] if path.startswith(inbox + b"/") else []
        return any(is_temporary(part, self.ignore_patterns) for part in parts)

    # The loop -------------------------------------------------------------------------------------
    def rescan(self, folder: bytes | None = None) -> int:
        found = 0
        for entry in walk(folder or os.fsencode(self.inbox), self.ignore_patterns):
            if isinstance(entry, bytes):
                self.tracker.touch(entry, changed=False)
                found += 1
        return found

    def step(self) -> int:
        """One pass: run requested rescans, hand on the files that are stable. Returns how many."""
        with self._rescan_lock:
            folders, self._rescans = self._rescans, set()
        for folder in sorted(folders, key=len):
            self.rescan(folder)
        ready = self.tracker.ready()
        handed = 0
        for start in range(0, len(ready), self.batch):
            handed += self._hand_on(ready[start : start + self.batch])
        return handed

    def _hand_on(self, paths: list[bytes]) -> int:
        inbox = os.fsencode(self.inbox)
        arrivals = [
            Arrival(path=path, dock=dock_of(path, inbox) or "unassigned", policy=self.source_policy) for path in paths
        ]
        try:
            sightings = open_sightings(self.ctx, arrivals, skip_seen=True)
        except TransientError as exc:
            log.warning("%s; %d file(s) will be picked up by the next rescan", exc, len(paths))
            return 0
        ids = [s.id for s in sightings if s is not None]
        if ids:
            try:
                self.enqueue(ids)
                mark_queued(self.ctx.engine, ids)
            except TransientError as exc:  # broker or catalog away: the reconciler queues the recorded sightings
                log.warning("could not queue %d sighting(s) (%s); the reconciler will", len(ids), exc)
            except Exception:
                log.exception("could not queue %d sighting(s); the reconciler will", len(ids))
        self.handed_on += len(ids)
        return len(ids)

    def _observer(self) -> BaseObserver:
        if self.polling:
            return PollingObserver(timeout=self.poll_interval)
        return Observer()

    def run(self, stop: threading.Event, *, on_step: Callable[[int], None] | None = None) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        alarm = _OverflowAlarm(self)
        watchdog_log = logging.getLogger("watchdog.observers")
        watchdog_log.addHandler(alarm)
        observer = self._observer()
        observer.schedule(_Hints(self), str(self.inbox), recursive=True)
        observer.start()
        try:
            self.rescan()
            last_rescan = time.monotonic()
            while not stop.is_set():
                handed = self.step()
                if on_step:
                    on_step(handed)
                if time.monotonic() - last_rescan >= self.rescan_interval:
                    self.rescan()
                    last_rescan = time.monotonic()
                stop.wait(self.tick)
        finally:
            observer.stop()
            observer.join(timeout=10)
            watchdog_log.removeHandler(alarm)
