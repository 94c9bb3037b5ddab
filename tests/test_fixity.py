"""Fixity: every stored object is re-hashed; a flipped byte or a missing object is named."""

from __future__ import annotations

from sqlmodel import Session, select

from pipeline.catalog.models import CustodyEvent, FixityCheck, Item


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
        path.chmod(0o600)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
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
