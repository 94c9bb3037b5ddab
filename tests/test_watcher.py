"""The watcher: complete files only, temp names ignored, nothing lost in a burst."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlmodel import Session, func, select

from pipeline.catalog.models import Item, Sighting
from pipeline.ingest.intake import intake
from pipeline.ingest.watcher import StabilityTracker, Watcher
from tests.conftest import files_under, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestStabilityTracker:
    def test_file_being_written_is_not_ready_until_quiet(self, tmp_path: Path) -> None:
        clock = FakeClock()
        tracker = StabilityTracker(quiet_period=2.0, clock=clock)
        path = tmp_path / "REC.mp4"
        path.write_bytes(b"a" * 10)
        tracker.touch(os.fsencode(path))
        assert tracker.ready() == []
        clock.now += 1.5
        with path.open("ab") as handle:
            handle.write(b"more")  # still growing: the quiet period starts again
        assert tracker.ready() == []
        clock.now += 1.5
        assert tracker.ready() == []
        clock.now += 0.6
        assert tracker.ready() == [os.fsencode(path)]
        assert len(tracker) == 0

    def test_file_untouched_for_the_quiet_period_is_ready_at_once(self, tmp_path: Path) -> None:
        """After a restart, files that have long been complete need not wait again."""
        path = tmp_path / "old.mp4"
        path.write_bytes(b"x")
        past = time.time() - 60
        os.utime(path, (past, past))
        tracker = StabilityTracker(quiet_period=5.0)
        tracker.touch(os.fsencode(path), changed=False)
        assert tracker.ready() == [os.fsencode(path)]

    def test_vanished_candidate_is_dropped(self, tmp_path: Path) -> None:
        tracker = StabilityTracker(quiet_period=0.0)
        tracker.touch(os.fsencode(tmp_path / "never-there.mp4"))
        assert tracker.ready() == []
        assert len(tracker) == 0


def inline_watcher(ctx, settings, **options) -> Watcher:
    """A watcher whose queue is this process: each batch it hands on is taken in at once."""
    return Watcher(
        ctx,
        lambda ids: intake(ctx, ids, worker="inline"),
        quiet_period=0.2,
        rescan_interval=60,
        ignore_patterns=settings.ignore_patterns,
        source_policy="move",
        **options,
    )


@contextmanager
def running(watcher: Watcher) -> Iterator[Watcher]:
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield watcher
    finally:
        stop.set()
        thread.join(10)


def count(ctx, model) -> int:
    with Session(ctx.engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


class TestWatcher:
    def test_temp_name_waits_until_renamed(self, ctx, settings, dock, media) -> None:
        watcher = inline_watcher(ctx, settings)
        with running(watcher):
            partial = media.variant("clip.mp4", dock / "A001.mp4.part")
            time.sleep(1.0)
            assert count(ctx, Sighting) == 0 and partial.exists()
            partial.rename(dock / "A001.mp4")
            wait_for(lambda: count(ctx, Item) == 1, 10, "the renamed file to be catalogued")
            wait_for(lambda: not (dock / "A001.mp4").exists(), 10, "the source to be moved")

    def test_folder_moved_in_whole_and_docks_from_folder_names(self, ctx, settings, media, tmp_path) -> None:
        """A folder renamed into the inbox brings no per-file events; its files are still found."""
        watcher = inline_watcher(ctx, settings)
        with running(watcher):
            staged = tmp_path / "staging" / "dock7"
            for n in range(5):
                media.variant("photo.jpg", staged / "DCIM" / f"IMG_{n}.jpg", n + 1)
            settings.inbox_dir.mkdir(parents=True, exist_ok=True)
            time.sleep(0.5)
            staged.rename(settings.inbox_dir / "dock7")
            wait_for(lambda: count(ctx, Item) == 5, 15, "five files of the moved folder")
            with Session(ctx.engine) as session:
                assert {i.dock_id for i in session.exec(select(Item))} == {"dock7"}

    def test_overflow_warning_triggers_a_rescan(self, ctx, settings, dock, media) -> None:
        """watchdog only logs a lost-events overflow; the watcher hears it and rescans the inbox."""
        watcher = inline_watcher(ctx, settings)
        media.variant("clip.mp4", dock / "missed.mp4")  # present, but no event was ever seen
        with running(watcher):
            wait_for(lambda: count(ctx, Item) == 1, 10, "the start-up rescan")
            media.variant("clip.mp4", dock / "missed-too.mp4", 5)
            watcher.tracker._candidates.clear()  # as if the kernel dropped the events
            logging.getLogger("watchdog.observers.inotify_c").warning(
                "Inotify queue overflowed; filesystem events were lost"
            )
            wait_for(lambda: count(ctx, Item) == 2, 10, "the rescan after the overflow")

    def test_polling_observer_for_network_shares(self, ctx, settings, dock, media) -> None:
        """With polling (no inotify on NFS/SMB mounts) new files are still found and taken in."""
        watcher = inline_watcher(ctx, settings, polling=True, poll_interval=0.2)
        with running(watcher):
            time.sleep(0.5)
            media.variant("voice.wav", dock / "polled.wav")
            wait_for(lambda: count(ctx, Item) == 1, 10, "the polled file to be catalogued")

    def test_rescan_skips_files_already_taken_in_from_the_same_place(self, ctx, settings, dock, media) -> None:
        """A dock with the 'keep' policy leaves files in place; rescans must not take them again."""
        watcher = inline_watcher(ctx, settings)
        watcher.source_policy = "keep"
        media.variant("clip.mp4", dock / "kept.mp4")
        watcher.rescan()
        time.sleep(0.3)
        watcher.step()
        watcher.rescan()
        time.sleep(0.3)
        watcher.step()
        assert (count(ctx, Item), count(ctx, Sighting)) == (1, 1)


class TestServeBurst:
    def test_two_thousand_files_each_catalogued_once(self, start, settings, media, ctx, tmp_path) -> None:
        """`evidence serve` on the embedded default takes a burst of 2,000 files without loss."""
        service = start("serve", extra_env={"EVIDENCE_QUIET_PERIOD": "0.5"})
        wait_for(lambda: "serving" in service.output(), 30, "serve to start")
        total = 2000
        for n in range(total):
            media.variant("clip.mp4", settings.inbox_dir / f"dock{n % 4}" / f"{n:05d}.mp4", n + 1)

        def done() -> bool:
            assert service.process.poll() is None, service.output()[-3000:]
            return count(ctx, Item) == total and not files_under(settings.inbox_dir)

        wait_for(done, 300, f"{total} files to be catalogued", interval=1.0)
        with Session(ctx.engine) as session:
            statuses = session.exec(select(Sighting.status, func.count()).group_by(Sighting.status)).all()
        assert dict(statuses) == {"stored": total}
        assert len(files_under(settings.processed_dir)) == total
        assert len(list(ctx.store.objects())) == total
        # Everything the embedded queue keeps is inside the data directory, nothing in the cwd.
        assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["data"]
