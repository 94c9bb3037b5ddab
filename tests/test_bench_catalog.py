"""The catalog benchmark's generator makes the catalog it says it makes, on SQLite and PostgreSQL,
and the project's own queries find in it what was made (so the benchmark cannot quietly time
queries that find nothing)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, func, select

from pipeline.catalog.db import dispose_engines, get_engine
from pipeline.catalog.models import CustodyEvent, Item
from pipeline.catalog.queries import ItemFilter, count_items, item_detail, list_items, page_items
from pipeline.custody import check_chain
from pipeline.reports import Report
from pipeline.storage.local import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import catalog as bench  # the benchmark is a script beside the tests, not a package

ITEMS = 300


@pytest.fixture(params=["sqlite", "postgresql"])
def made(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[bench.Catalog, bench.Made]]:
    if request.param == "sqlite":
        catalog = bench.sqlite_catalog(tmp_path, ITEMS)
    else:
        admin = str(request.getfixturevalue("postgres_admin"))
        catalog = bench.postgres_catalog(admin, ITEMS, schema=f"t_bench_{uuid.uuid4().hex[:10]}")
    try:
        yield catalog, bench.fill(catalog)
    finally:
        dispose_engines()
        catalog.drop()


class TestCatalogGenerator:
    def test_queries_find_what_was_made(self, made: tuple[bench.Catalog, bench.Made], tmp_path: Path) -> None:
        """Items, custody events in one valid chain, and the listings, queues and search of a
        custodian with no clearance return the items the generator made for them."""
        catalog, what = made
        plain = bench.viewers()["uncleared"]
        with Session(get_engine(catalog.url)) as session:
            assert session.exec(select(func.count()).select_from(Item)).one() == ITEMS
            events = session.exec(select(func.count()).select_from(CustodyEvent)).one()
            assert events == what.rows["custodyevent"] and ITEMS * 9 <= events <= ITEMS * 10
            assert check_chain(session).ok
            assert count_items(session, viewer=plain, filters=ItemFilter(late=True)) == what.late > 0
            for fact, missing in what.missing.items():
                assert count_items(session, viewer=plain, filters=ItemFilter(missing=fact)) == missing
            damaged = ItemFilter(issues=("damaged-media", "truncated-stream"))
            assert count_items(session, viewer=plain, filters=damaged) == what.damaged
            unclassified = ItemFilter(classification="unclassified")
            assert count_items(session, viewer=plain, filters=unclassified) == what.unclassified
            for number, members in what.case_items.items():
                assert len(list_items(session, viewer=plain, filters=ItemFilter(case_number=number))) == members
            officer, count = max(what.officer_items.items(), key=lambda pair: pair[1])
            found = page_items(session, viewer=plain, filters=ItemFilter(text=officer.upper()), limit=500)
            assert found.count == count and all(officer in (i.collector or "") for i in found.items)
            ident = what.plain_ids[0]
            detail = item_detail(
                session, ident=ident, viewer=plain, via="test", store=LocalStore(tmp_path / "s"), tool="t"
            )
            assert detail.summary.id == ident and [e.action for e in detail.events][:2] == ["ingested", "probed"]

    def test_every_timed_query_runs_and_the_report_counts_every_item(
        self, made: tuple[bench.Catalog, bench.Made], tmp_path: Path
    ) -> None:
        """Each query the benchmark times runs on the generated catalog, and the supervision
        report it times (as an auditor cleared for every class) counts every item made, with the
        late ones the generator made late."""
        catalog, what = made
        cleared = bench.viewers()["cleared"]
        timed = bench.queries(what, ZoneInfo("Asia/Shanghai"), tmp_path)
        assert {"report, all time", "report, one month"} <= {q.name for q in timed}
        with Session(get_engine(catalog.url)) as session:
            for query in timed:
                found = query.run(session, cleared, 1)
                session.rollback()
                if query.name == "report, all time":
                    assert isinstance(found, Report) and found.received == ITEMS
                    late = session.exec(select(func.count()).select_from(Item).where(col(Item.late).is_(True))).one()
                    assert found.late + found.withheld >= late >= found.late > 0
