"""Catalog queries every interface shares: finding an item by the name a person gives, and reads
that stay bounded however large the catalog (counts, short search texts, the overdue report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from pipeline.catalog import queries
from pipeline.catalog.models import Case, Dock, Item, ItemIssue
from pipeline.catalog.people import Role
from pipeline.catalog.queries import items
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, NotFoundError

SERVER = Viewer.local("clerk")  # the server's own authority sees every record


class TestFindItem:
    def test_by_id_hash_or_prefix_and_clear_errors_otherwise(self, cli, ctx, dock, media) -> None:
        """An ID, a SHA-256 or a unique prefix of either finds the item; a prefix shared by two
        items (IDs taken in the same instant share their time part) is ambiguous; a name that
        matches nothing, or is too short to be safe, is not found."""
        media.variant("voice.wav", dock / "a.wav", 1)
        media.variant("voice.wav", dock / "b.wav", 2)
        first, second = cli("ingest", str(dock), "--no-probe", "--json").records
        with Session(ctx.engine) as session:
            assert queries.find_item(session, str(first["item"]), viewer=SERVER).id == first["item"]
            assert queries.find_item(session, str(second["sha256"])[:12].upper(), viewer=SERVER).id == second["item"]
            with pytest.raises(queries.AmbiguousError, match="more than one item matches"):
                queries.find_item(session, str(first["item"])[:6], viewer=SERVER)
            with pytest.raises(NotFoundError, match="no item matches 'ZZZZZZZZ'"):
                queries.find_item(session, "ZZZZZZZZ", viewer=SERVER)
            with pytest.raises(NotFoundError):
                queries.find_item(session, str(first["item"])[:5], viewer=SERVER)
            assert queries.count_items(session, viewer=SERVER) == 2


CUSTODIAN = Viewer(name="custodian", roles=frozenset({Role.CUSTODIAN}))
START = datetime(2025, 3, 1, tzinfo=UTC)


def catalogue(session: Session, rows: list[dict[str, object]]) -> list[str]:
    """Items made straight in the catalog, one a minute in the order given; their IDs."""
    session.add(Dock(id="dock1"))
    session.add(Dock(id="dock2"))
    made = []
    for n, fields in enumerate(rows):
        name = str(fields.pop("name", f"rec-{n:02d}.wav"))
        values: dict[str, Any] = {"dock_id": "dock1", "classification": "none", **fields}
        item = Item(
            sha256=f"{n:064x}",
            size=1,
            original_name=name,
            original_name_raw=name.encode(),
            media_kind="audio",
            created_at=START + timedelta(minutes=n),
            **values,
        )
        session.add(item)
        made.append(item.id)
    session.commit()
    return made


class TestBoundedReads:
    def test_a_short_text_is_looked_for_in_the_newest_items_only(self, ctx, monkeypatch) -> None:
        """A text under 3 characters finds what the newest items hold (and says how many were
        looked in); 3 characters or more are looked for in every item."""
        monkeypatch.setattr(items, "SHORT_TEXT_WINDOW", 4)
        with Session(ctx.engine) as session:
            ids = catalogue(session, [{"name": f"{'zq' if n in (0, 6) else 'ab'}-{n}.wav"} for n in range(8)])
            short = queries.page_items(session, viewer=CUSTODIAN, filters=queries.ItemFilter(text="ZQ"))
            assert [i.id for i in short.items] == [ids[6]] and short.count == 1 and short.window == 4
            assert short.as_json()["searched_newest"] == 4
            longer = queries.page_items(session, viewer=CUSTODIAN, filters=queries.ItemFilter(text="zq-"))
            assert [i.id for i in longer.items] == [ids[0], ids[6]] and longer.window is None
            # The window is of the items the other filters select.
            narrowed = queries.ItemFilter(text="zq", dock="dock1")
            assert queries.count_items(session, viewer=CUSTODIAN, filters=narrowed) == 1

    def test_counts_are_exact_up_to_the_limit_then_say_more(self, ctx, monkeypatch) -> None:
        """A page counts up to COUNT_LIMIT exactly, then gives the limit and says it is not exact;
        ``at_most`` reads one past the limit and no more."""
        monkeypatch.setattr(items, "COUNT_LIMIT", 3)
        with Session(ctx.engine) as session:
            catalogue(session, [{"dock_id": "dock2" if n < 2 else "dock1"} for n in range(6)])
            page = queries.page_items(session, viewer=CUSTODIAN, limit=2)
            assert (page.count, page.count_exact) == (3, False)
            assert page.as_json()["count_exact"] is False
            few = queries.page_items(session, viewer=CUSTODIAN, filters=queries.ItemFilter(dock="dock2"))
            assert (few.count, few.count_exact) == (2, True)
            assert queries.count_items(session, viewer=CUSTODIAN, at_most=3) == 4
            assert queries.count_items(session, viewer=CUSTODIAN) == 6

    def test_overdue_pages_walk_the_whole_report_once_in_order(self, ctx) -> None:
        """Following ``next_after`` gives every late record once, in the report's order (officer,
        dock, capture time), unknown officers and capture times included; a stale ``after`` is refused."""
        late: dict[str, object] = {"late": True, "working_days_late": 1}
        rows: list[dict[str, object]] = []
        for n in range(11):
            officer = None if n % 4 == 0 else f"officer-{n % 3}"
            captured = None if n % 5 == 0 else START - timedelta(days=n % 3, minutes=n)
            rows.append({**late, "collector": officer, "captured_at": captured, "dock_id": f"dock{1 + n % 2}"})
        rows.append({"late": False, "collector": "officer-1"})
        with Session(ctx.engine) as session:
            on_time = catalogue(session, rows)[-1]
            whole = [
                (g.officer, g.dock, i.id) for g in queries.overdue_groups(session, viewer=CUSTODIAN) for i in g.items
            ]
            assert len(whole) == 11
            walked: list[tuple[str | None, str, str]] = []
            after: str | None = None
            while True:
                page = queries.overdue_page(session, viewer=CUSTODIAN, limit=3, after=after)
                walked += [(g.officer, g.dock, i.id) for g in page.groups for i in g.items]
                after = page.next_after
                if after is None:
                    break
            assert walked == whole
            with pytest.raises(InvalidValueError, match="not a late record"):
                queries.overdue_page(session, viewer=CUSTODIAN, after="01NOTALATERECORD000000000A")
            with pytest.raises(InvalidValueError, match="not a late record"):
                queries.overdue_page(session, viewer=CUSTODIAN, after=on_time)
            with pytest.raises(InvalidValueError):
                queries.overdue_page(session, viewer=CUSTODIAN, limit=0)


class TestQueues:
    def test_the_unclassified_queue_is_what_no_class_applies_to(self, ctx) -> None:
        """An item is in the unclassified queue, counted and paged alike, when its own class is
        unclassified and its case (if it names one) is of no other class: no case, a case not in
        the catalog, or an unclassified case; an item of an open or privacy case is not, nor one
        classed itself. Each item's class as it applies, read one by one, agrees."""
        cases = {"OPEN": "none", "PRIV": "privacy", "UNCL": "unclassified"}
        rows: list[dict[str, object]] = []
        for own in ("unclassified", "none"):
            for case in (None, "OPEN", "PRIV", "UNCL", "GONE"):
                rows.append({"classification": own, "case_number": case})
        with Session(ctx.engine) as session:
            for number, classification in cases.items():
                session.add(Case(number=number, classification=classification))
            ids = catalogue(session, rows)
            expected = [
                ident
                for ident, row in zip(ids, rows, strict=True)
                if row["classification"] == "unclassified" and row["case_number"] in (None, "UNCL", "GONE")
            ]
            queue = queries.ItemFilter(classification="unclassified")
            page = queries.page_items(session, viewer=CUSTODIAN, filters=queue)
            assert [i.id for i in page.items] == expected and page.count == 3
            assert queries.count_items(session, viewer=CUSTODIAN, filters=queue) == 3
            every = queries.list_items(session, viewer=CUSTODIAN)
            assert [i.id for i in every if i.classification == "unclassified"] == expected

    def test_a_page_of_a_large_selection_is_the_same_items(self, ctx, monkeypatch) -> None:
        """When issues or a text select more items than a count reads (where SQLite reads the
        listing's order and tests each item instead of looking them up first), the pages walk the
        same items, in the same order, as the whole listing with those filters."""
        monkeypatch.setattr(items, "COUNT_LIMIT", 3)
        rows: list[dict[str, object]] = [
            {"name": f"{'bridge' if n % 3 else 'canal'}-{n:02d}.wav", "collector": f"officer-{n % 2}"}
            for n in range(14)
        ]
        with Session(ctx.engine) as session:
            ids = catalogue(session, rows)
            for n, ident in enumerate(ids):
                if n % 4 != 1:
                    session.add(
                        ItemIssue(item_id=ident, code="damaged-media" if n % 2 else "truncated-stream", message="")
                    )
            session.commit()
            for filters in (
                queries.ItemFilter(issues=("damaged-media", "truncated-stream")),
                queries.ItemFilter(issue="damaged-media"),
                queries.ItemFilter(text="BRIDGE"),
                queries.ItemFilter(text="bridge", issues=("truncated-stream",), officer="officer-0"),
            ):
                whole = [i.id for i in queries.list_items(session, viewer=CUSTODIAN, filters=filters)]
                walked: list[str] = []
                cursor = None
                while True:
                    page = queries.page_items(session, viewer=CUSTODIAN, filters=filters, cursor=cursor, limit=2)
                    walked += [i.id for i in page.items]
                    assert (page.count, page.count_exact) == (min(len(whole), 3), len(whole) <= 3)
                    if page.next is None:
                        break
                    cursor = page.next
                assert walked == whole and len(whole) >= 2
