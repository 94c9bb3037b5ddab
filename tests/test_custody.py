"""The custody log is a hash chain: any edit, deletion or insertion is found and named."""

from __future__ import annotations

import json
from itertools import pairwise

from sqlalchemy import text
from sqlmodel import Session, select

from pipeline.catalog.models import CustodyEvent
from pipeline.custody import GENESIS, CustodyLog, check_chain


def seed(engine, n: int = 5) -> list[int]:
    with Session(engine) as session:
        with CustodyLog(session, "custodian") as log:
            for i in range(n):
                log.record("viewed", f"item:{i}", {"via": "test", "n": i, "名": "张三"})
        session.commit()
        return [e.seq for e in session.exec(select(CustodyEvent).order_by(CustodyEvent.seq)).all()]


class TestCustodyChain:
    def test_chain_links_every_event_to_the_one_before(self, ctx) -> None:
        seqs = seed(ctx.engine)
        with Session(ctx.engine) as session:
            events = session.exec(select(CustodyEvent).order_by(CustodyEvent.seq)).all()
            report = check_chain(session)
        assert events[0].prev_hash == GENESIS
        assert all(b.prev_hash == a.hash for a, b in pairwise(events))
        assert (report.ok, report.events, report.head) == (True, len(seqs), events[-1].hash)

    def test_edited_row_is_named(self, ctx, cli) -> None:
        """Changing one event's details breaks its seal; `audit verify` names that event."""
        seqs = seed(ctx.engine)
        with ctx.engine.begin() as connection:
            connection.execute(
                text("UPDATE custodyevent SET details = :d WHERE seq = :s"), {"d": '{"via":"forged"}', "s": seqs[2]}
            )
        result = cli("audit", "verify", "--json")
        assert result.exit_code == 1
        (report,) = result.records
        assert report["ok"] is False
        assert report["broken_at"] == seqs[2]
        assert "edited" in str(report["reason"])

    def test_deleted_row_is_found_at_the_next_event(self, ctx, cli) -> None:
        seqs = seed(ctx.engine)
        with ctx.engine.begin() as connection:
            connection.execute(text("DELETE FROM custodyevent WHERE seq = :s"), {"s": seqs[1]})
        result = cli("audit", "verify")
        assert result.exit_code == 1
        assert f"BROKEN at event {seqs[2]}" in result.output

    def test_intact_log_verifies(self, ctx, cli) -> None:
        seed(ctx.engine, 3)
        result = cli("audit", "verify", "--json")
        assert result.exit_code == 0
        assert json.loads(result.output)["events"] == 3

    def test_chain_survives_many_writers_in_one_transaction(self, ctx) -> None:
        """Events appended in one batch keep chain order in seq order."""
        seed(ctx.engine, 300)
        seed(ctx.engine, 300)
        with Session(ctx.engine) as session:
            assert check_chain(session).ok
