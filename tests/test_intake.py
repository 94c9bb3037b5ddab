"""Intake: verified copy, catalogue, then source disposal — on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pipeline.catalog.models import CustodyEvent, Item, Sighting
from pipeline.ingest import disposal
from pipeline.ingest import intake as intake_module
from pipeline.ingest.intake import Arrival, IntakeContext, intake, intake_leased, open_sightings
from pipeline.ingest.reconcile import due_sightings


def take_in(ctx: IntakeContext, *paths: Path | bytes, dock: str = "dock1", policy: str = "move", worker: str = "w1"):
    arrivals = [Arrival(os.fsencode(p), dock, policy) for p in paths]
    opened = open_sightings(ctx, arrivals)
    return intake(ctx, [o.id for o in opened if o is not None], worker=worker)


def rows(ctx: IntakeContext, model):
    with Session(ctx.engine) as session:
        return list(session.exec(select(model)).all())


class TestIntake:
    def test_file_is_stored_catalogued_then_moved(self, ctx, dock, media) -> None:
        """The stored copy verifies, the item is catalogued, and only then the source leaves the inbox."""
        clip = media.variant("clip.mp4", dock / "sub" / "A001.mp4")
        content = clip.read_bytes()
        (result,) = take_in(ctx, clip)
        assert result.status == "stored"
        assert result.sha256 == hashlib.sha256(content).hexdigest()
        assert result.disposition == "moved"
        assert not clip.exists()
        moved = ctx.processed_dir / "dock1" / "sub" / "A001.mp4"
        assert moved.read_bytes() == content
        assert ctx.store.digest(result.sha256) == (result.sha256, len(content))
        (item,) = rows(ctx, Item)
        assert (item.original_name, item.size, item.media_kind, item.dock_id) == (
            "A001.mp4",
            len(content),
            "video",
            "dock1",
        )

    def test_duplicate_adds_a_sighting_not_an_item(self, ctx, dock, media) -> None:
        first = media.variant("voice.wav", dock / "a.wav")
        second = media.variant("voice.wav", dock / "b.wav")
        results = take_in(ctx, first, second)
        assert [r.status for r in results] == ["stored", "duplicate"]
        assert results[0].item == results[1].item
        assert len(rows(ctx, Item)) == 1
        assert {s.status for s in rows(ctx, Sighting)} == {"stored", "duplicate"}
        assert sorted(p.name for p in (ctx.processed_dir / "dock1").iterdir()) == ["a.wav", "b.wav"]

    def test_non_utf8_name_kept_exactly_and_shown_readably(self, ctx, dock, media) -> None:
        """A Windows dock writes GBK names; the bytes survive, the catalog shows Chinese."""
        raw_name = "执法记录仪_0001.mp4".encode("gbk")
        path = os.path.join(os.fsencode(dock), raw_name)
        with open(path, "wb") as handle:
            handle.write((media.folder / "clip.mp4").read_bytes())
        (result,) = take_in(ctx, path)
        assert result.status == "stored"
        (item,) = rows(ctx, Item)
        assert item.original_name == "执法记录仪_0001.mp4"
        assert item.original_name_raw == raw_name
        assert raw_name in os.listdir(os.fsencode(ctx.processed_dir / "dock1"))

    def test_zero_byte_file_is_flagged_not_catalogued(self, ctx, dock) -> None:
        empty = dock / "REC0001.wav"
        empty.touch()
        (result,) = take_in(ctx, empty)
        assert result.status == "failed"
        assert "zero-byte" in (result.error or "")
        assert rows(ctx, Item) == []
        assert (ctx.quarantine_dir / "dock1" / "REC0001.wav").exists()
        assert not empty.exists()

    def test_vanished_file_is_reported_with_reason(self, ctx, dock, media) -> None:
        clip = media.variant("clip.mp4", dock / "gone.mp4")
        opened = open_sightings(ctx, [Arrival(os.fsencode(clip), "dock1", "move")])
        clip.unlink()
        (result,) = intake(ctx, [opened[0].id], worker="w1")  # type: ignore[union-attr]
        assert (result.status, result.disposition) == ("failed", "gone")
        assert "vanished" in (result.error or "")

    def test_symlink_is_refused_and_left_alone(self, ctx, dock, tmp_path) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("not evidence")
        link = dock / "link.mp4"
        link.symlink_to(secret)
        (result,) = take_in(ctx, link)
        assert result.status == "failed"
        assert "symbolic link" in (result.error or "")
        assert secret.read_text() == "not evidence"
        assert rows(ctx, Item) == []

    def test_keep_and_delete_policies(self, ctx, dock, media) -> None:
        kept = media.variant("photo.jpg", dock / "kept.jpg", 1)
        deleted = media.variant("photo.jpg", dock / "deleted.jpg", 2)
        (keep_result,) = take_in(ctx, kept, policy="keep")
        (delete_result,) = take_in(ctx, deleted, policy="delete")
        assert (keep_result.disposition, kept.exists()) == ("kept", True)
        assert (delete_result.disposition, deleted.exists()) == ("deleted", False)
        assert ctx.store.exists(delete_result.sha256)  # type: ignore[arg-type]

    def test_same_path_is_never_opened_twice(self, ctx, dock, media) -> None:
        """While a sighting is open, a second arrival of the same path is refused."""
        clip = media.variant("clip.mp4", dock / "x.mp4")
        arrival = Arrival(os.fsencode(clip), "dock1", "move")
        first = open_sightings(ctx, [arrival])
        second = open_sightings(ctx, [arrival])
        assert first[0] is not None and second == [None]

    def test_repeated_intake_is_idempotent(self, ctx, dock, media) -> None:
        clip = media.variant("clip.mp4", dock / "y.mp4")
        opened = open_sightings(ctx, [Arrival(os.fsencode(clip), "dock1", "move")])
        sid = opened[0].id  # type: ignore[union-attr]
        first = intake(ctx, [sid], worker="w1")
        again = intake(ctx, [sid], worker="w2")
        assert first == again
        assert len(rows(ctx, Item)) == 1

    def test_live_lease_is_respected_and_dead_one_taken_over(self, ctx, dock, media, monkeypatch) -> None:
        """A second worker leaves a live intake alone; once the lease runs out it takes over."""
        clip = media.variant("clip.mp4", dock / "z.mp4")
        opened = open_sightings(ctx, [Arrival(os.fsencode(clip), "dock1", "move")])
        sid = opened[0].id  # type: ignore[union-attr]
        claimed, _, _ = intake_module._claim(ctx, [sid], "dead-worker")  # the worker dies after claiming
        assert claimed
        (busy,) = intake(ctx, [sid], worker="w2")
        assert busy.status == "busy" and clip.exists()
        assert due_sightings(ctx.engine, stale_after=300, quiet_period=0, lease_seconds=60) == []
        with Session(ctx.engine) as session:
            sighting = session.get(Sighting, sid)
            sighting.lease_until = sighting.received_at  # expired
            session.add(sighting)
            session.commit()
        assert due_sightings(ctx.engine, stale_after=300, quiet_period=0, lease_seconds=60) == [sid]
        (done,) = intake(ctx, [sid], worker="w2")
        assert done.status == "stored" and not clip.exists()

    def test_sightings_opened_with_a_lease_are_taken_in_without_a_claim(self, ctx, dock, media) -> None:
        """The command line records its arrivals already leased to itself and takes them in next."""
        clip = media.variant("clip.mp4", dock / "leased.mp4")
        (opened,) = open_sightings(ctx, [Arrival(os.fsencode(clip), "dock1", "move")], lease_to="cli-1")
        assert opened is not None
        (sighting,) = rows(ctx, Sighting)
        assert (sighting.lease_owner, sighting.attempts) == ("cli-1", 1)
        assert sighting.lease_until is not None and sighting.lease_until > sighting.received_at
        (result,) = intake_leased(ctx, [opened], worker="cli-1")
        assert (result.status, result.disposition) == ("stored", "moved")
        assert not clip.exists() and (ctx.processed_dir / "dock1" / "leased.mp4").exists()
        (sighting,) = rows(ctx, Sighting)
        assert (sighting.status, sighting.lease_owner, sighting.active_key) == ("stored", None, None)
        actions = [event.action for event in rows(ctx, CustodyEvent)]
        assert actions == ["received", "ingested", "source-moved"]

    def test_leased_sighting_taken_over_meanwhile_is_left_to_its_new_owner(self, ctx, dock, media) -> None:
        """A worker whose lease passed to another catalogues nothing and leaves the source alone."""
        clip = media.variant("clip.mp4", dock / "lost.mp4")
        (opened,) = open_sightings(ctx, [Arrival(os.fsencode(clip), "dock1", "move")], lease_to="cli-1")
        assert opened is not None
        with Session(ctx.engine) as session:
            sighting = session.get(Sighting, opened.id)
            sighting.lease_owner = "w2"  # its lease ran out and another worker took it over
            session.add(sighting)
            session.commit()
        (result,) = intake_leased(ctx, [opened], worker="cli-1")
        assert result.status == "busy"
        assert rows(ctx, Item) == [] and clip.exists()
        (sighting,) = rows(ctx, Sighting)
        assert (sighting.status, sighting.lease_owner) == ("pending", "w2")

    def test_file_still_being_written_is_deferred(self, ctx, dock, media, monkeypatch) -> None:
        """A source that grows during the copy is not catalogued; it waits to be taken in again."""
        clip = media.variant("clip.mp4", dock / "growing.mp4")
        real_put = ctx.store.put

        def put_while_writer_appends(fd, **kwargs):
            stored = real_put(fd, **kwargs)
            with clip.open("ab") as handle:
                handle.write(b"more frames")
            return stored

        monkeypatch.setattr(ctx.store, "put", put_while_writer_appends)
        (result,) = take_in(ctx, clip)
        assert result.status == "pending"
        assert "changed while being copied" in (result.error or "")
        assert rows(ctx, Item) == [] and clip.exists()
        monkeypatch.undo()
        os.utime(clip, (0, 0))  # quiet for long enough now
        (sighting,) = rows(ctx, Sighting)
        assert due_sightings(ctx.engine, stale_after=300, quiet_period=1, lease_seconds=60) == [sighting.id]
        (again,) = intake(ctx, [sighting.id], worker="w1")
        assert again.status == "stored"
        assert again.size == len((media.folder / "clip.mp4").read_bytes()) + len(b"more frames")

    def test_crash_before_move_is_finished_later(self, ctx, dock, media, monkeypatch) -> None:
        """Killed after the catalog commit but before the move: the next run moves the source."""
        clip = media.variant("clip.mp4", dock / "late.mp4")

        def crash(*_args, **_kwargs):
            raise KeyboardInterrupt("worker killed")

        monkeypatch.setattr(disposal, "_dispose_one", crash)
        with pytest.raises(KeyboardInterrupt):
            take_in(ctx, clip)
        monkeypatch.undo()
        (sighting,) = rows(ctx, Sighting)
        assert (sighting.status, sighting.disposition) == ("stored", "pending")
        assert clip.exists()
        (result,) = intake(ctx, [sighting.id], worker="w9")
        assert (result.status, result.disposition) == ("stored", "moved")
        assert not clip.exists() and (ctx.processed_dir / "dock1" / "late.mp4").exists()
        assert len(rows(ctx, Item)) == 1
