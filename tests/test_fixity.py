"""Fixity: every stored object is re-hashed; a flipped byte or a missing object is named and stays
an open issue until the object is whole again; checks come due on a schedule."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlmodel import Session, select

from pipeline.catalog.models import CustodyEvent, FixityCheck, Item, StageRun
from pipeline.fixity import check_scheduled, schedule_fixity
from tests.conftest import flip_byte


def ingest_two(cli, dock, media) -> list[dict]:
    media.variant("clip.mp4", dock / "one.mp4", 1)
    media.variant("voice.wav", dock / "two.wav", 2)
    result = cli("ingest", str(dock), "--json")
    assert result.exit_code == 0
    return result.records


class TestFixity:
    def test_clean_store_passes(self, cli, ctx, dock, media) -> None:
        ingest_two(cli, dock, media)
        result = cli("fixity", "--json")
        assert result.exit_code == 0
        assert {r["status"] for r in result.records} == {"ok"}
        with Session(ctx.engine) as session:
            assert {i.fixity_status for i in session.exec(select(Item))} == {"ok"}

    def test_flipped_byte_is_found_and_named(self, cli, ctx, dock, media) -> None:
        """One flipped bit in a stored object: fixity names that item and exits non-zero."""
        records = ingest_two(cli, dock, media)
        victim = records[0]
        path = ctx.store.path(victim["sha256"])
        flip_byte(path, path.stat().st_size // 2)
        result = cli("fixity", "--json")
        assert result.exit_code == 1
        by_item = {r["item"]: r for r in result.records}
        assert by_item[victim["item"]]["status"] == "mismatch"
        assert by_item[victim["item"]]["found"] != victim["sha256"]
        assert by_item[records[1]["item"]]["status"] == "ok"
        with Session(ctx.engine) as session:
            checks = session.exec(select(FixityCheck).where(FixityCheck.item_id == victim["item"])).all()
            assert [c.outcome for c in checks] == ["mismatch"]
            events = session.exec(select(CustodyEvent).where(CustodyEvent.action == "fixity-checked")).all()
            assert len(events) == 2

    def test_missing_object_is_named(self, cli, ctx, dock, media) -> None:
        records = ingest_two(cli, dock, media)
        ctx.store.path(records[1]["sha256"]).unlink()
        result = cli("fixity")
        assert result.exit_code == 1
        assert f"MISSING: item {records[1]['item']}" in result.output

    def test_an_altered_object_stays_an_open_issue_until_it_is_restored(self, cli, ctx, dock, media) -> None:
        records = ingest_two(cli, dock, media)
        victim = records[0]
        path = ctx.store.path(victim["sha256"])
        original = path.read_bytes()
        flip_byte(path, len(original) - 1)
        assert cli("fixity").exit_code == 1
        flagged = cli("items", "--issue", "fixity-mismatch", "--json").records
        assert [i["id"] for i in flagged] == [victim["item"]]
        # Setting facts by hand re-assesses the item; the store's problem is not forgotten.
        assert cli("assign", victim["item"], "--case", "A-1").exit_code == 0
        shown = cli("item", victim["item"], "--json").records[0]
        assert "fixity-mismatch" in {i["code"] for i in shown["issues"]}
        path.write_bytes(original)  # restored from a replica
        assert cli("fixity").exit_code == 0
        assert cli("items", "--issue", "fixity-mismatch", "--json").records == []


class TestScheduledFixity:
    def test_due_items_are_checked_oldest_first_one_batch_at_a_time(self, cli, ctx, dock, media) -> None:
        records = ingest_two(cli, dock, media)
        ids = sorted(r["item"] for r in records)  # ULIDs: taken in in this order
        assert schedule_fixity(ctx.engine, every=timedelta(days=30), limit=5) == []  # nothing due yet
        time.sleep(0.05)
        first = schedule_fixity(ctx.engine, every=timedelta(0), limit=1)
        assert first == [ids[0]]
        assert schedule_fixity(ctx.engine, every=timedelta(0), limit=5) == []  # a batch is still pending
        [result] = check_scheduled(ctx, item_ids=first)
        assert result.ok
        # The same message again (re-sent while it waited in the queue) checks nothing twice.
        assert check_scheduled(ctx, item_ids=first) == []
        with Session(ctx.engine) as session:
            run = session.exec(select(StageRun).where(StageRun.item_id == ids[0], StageRun.stage == "fixity")).one()
            assert run.status == "done"
            checked = session.get(Item, ids[0])
            assert checked is not None and checked.fixity_status == "ok"
        # The item not checked since intake now comes before the one just checked.
        assert schedule_fixity(ctx.engine, every=timedelta(0), limit=5) == [ids[1], ids[0]]
