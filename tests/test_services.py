"""The functions the command line and the web application share, called directly: listing items
with filters, one item's record (a recorded view), cases and their targets, the overdue list, disc
packages, and facts set by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, func, select

from pipeline.catalog import queries
from pipeline.catalog.cases import set_case_target
from pipeline.catalog.models import Case, CustodyEvent, Item, ItemFact
from pipeline.catalog.viewer import Viewer
from pipeline.custody import check_chain, events_for
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError
from pipeline.ingest.intake import IntakeContext
from pipeline.probe.assign import assign_facts, checked_facts
from pipeline.probe.stage import ProbeContext
from pipeline.runtime import open_store, probe_context
from pipeline.settings import Settings, load_settings
from pipeline.stage import TOOL

SHANGHAI = ZoneInfo("Asia/Shanghai")
SERVER = Viewer.local("clerk")  # the server's own authority sees every record


@pytest.fixture
def probe_ctx(settings: Settings, ctx: IntakeContext) -> Iterator[ProbeContext]:
    yield probe_context(settings)


@pytest.fixture
def ingest(cli, settings: Settings, media_dir: Path):
    """Ingest (and probe) samples, given as (sample, dock, file name); the item IDs by file name."""

    def run(*files: tuple[str, str, str]) -> dict[str, str]:
        for sample, dock, name in files:
            dest = settings.inbox_dir / dock / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes((media_dir / sample).read_bytes() + name.encode())  # distinct content per name
        result = cli("ingest", str(settings.inbox_dir), "--no-derive", "--json")
        assert result.exit_code == 0, result.output
        return {Path(str(r["path"])).name: str(r["item"]) for r in result.records}

    return run


def custody_count(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(CustodyEvent)).one())


class TestListItems:
    def test_filters_select_the_right_items_and_combine(self, ingest, probe_ctx, ctx) -> None:
        """Each filter narrows the listing to the items a person means; filters given together all apply."""
        ids = ingest(("clip.mp4", "dock1", "a.mp4"), ("voice.wav", "dock2", "b.wav"), ("photo.jpg", "dock2", "c.jpg"))
        assign_facts(
            probe_ctx,
            ident=ids["a.mp4"],
            facts={"case_number": "C1", "collector": "012345", "captured_at": "2025-09-30T10:00"},
            viewer=Viewer.local("clerk"),
        )
        assign_facts(probe_ctx, ident=ids["b.wav"], facts={"case_number": "C2"}, viewer=Viewer.local("clerk"))
        with Session(ctx.engine) as session:
            set_case_target(session, number="C2", target="某某运输有限公司", viewer=Viewer.local("clerk"), tool=TOOL)
            session.commit()

            def listed(**filters: object) -> list[str]:
                found = queries.list_items(session, viewer=SERVER, filters=queries.ItemFilter(**filters))  # type: ignore[arg-type]
                return [item.id for item in found]

            assert listed() == [ids["a.mp4"], ids["b.wav"], ids["c.jpg"]]
            assert listed(dock="dock2") == [ids["b.wav"], ids["c.jpg"]]
            assert listed(case_number="C1") == [ids["a.mp4"]]
            assert listed(target="某某运输有限公司") == [ids["b.wav"]]
            assert listed(officer="012345") == [ids["a.mp4"]]
            assert listed(late=True) == [ids["a.mp4"]]
            assert listed(missing="case_number") == [ids["c.jpg"]]
            assert listed(issue="capture-time-unknown") == [ids["b.wav"], ids["c.jpg"]]
            assert listed(media_kind="image") == [ids["c.jpg"]]
            assert listed(dock="dock2", missing="case_number") == [ids["c.jpg"]]
            assert listed(dock="dock1", missing="case_number") == []
            assert listed(limit=2) == [ids["a.mp4"], ids["b.wav"]]
            day = queries.local_day("2025-09-30", SHANGHAI, end=False)
            assert listed(captured_from=day, captured_to=queries.local_day("2025-09-30", SHANGHAI, end=True)) == [
                ids["a.mp4"]
            ]
            assert listed(captured_from=queries.local_day("2025-10-01", SHANGHAI, end=False)) == []
            summary = queries.list_items(session, viewer=SERVER, filters=queries.ItemFilter(case_number="C1"))[0]
            assert summary.as_json()["captured_at"] == "2025-09-30T02:00:00+00:00"
            assert summary.as_json()["dock"] == "dock1" and summary.late is True

    def test_a_filter_that_cannot_be_applied_is_refused(self) -> None:
        """An unknown required fact, a time without a zone or a negative limit is an InvalidValueError."""
        with pytest.raises(InvalidValueError, match="'colour' is not one of the required facts"):
            queries.ItemFilter(missing="colour")
        with pytest.raises(InvalidValueError, match="captured_from 2025-10-01T00:00:00 has no time zone"):
            queries.ItemFilter(captured_from=datetime(2025, 10, 1))
        with pytest.raises(InvalidValueError, match="limit -1"):
            queries.ItemFilter(limit=-1)

    def test_local_day_reads_dates_and_times_in_the_site_zone(self) -> None:
        """A date is the local day (its end is the next midnight); a time without offset is local; others refused."""
        assert queries.local_day("2025-10-02", SHANGHAI, end=False) == datetime(2025, 10, 1, 16, tzinfo=UTC)
        assert queries.local_day("2025-10-02", SHANGHAI, end=True) == datetime(2025, 10, 2, 16, tzinfo=UTC)
        assert queries.local_day("2025-10-02T09:30", SHANGHAI, end=True) == datetime(2025, 10, 2, 1, 30, tzinfo=UTC)
        assert queries.local_day("2025-10-02T09:30+00:00", SHANGHAI, end=False) == datetime(
            2025, 10, 2, 9, 30, tzinfo=UTC
        )
        with pytest.raises(InvalidValueError, match=r"'yesterday' is not a date \(YYYY-MM-DD\) or ISO time"):
            queries.local_day("yesterday", SHANGHAI, end=False)


class TestItemDetail:
    def test_viewing_is_recorded_with_the_actor_and_ends_the_history(self, ingest, ctx, settings) -> None:
        """The view is a custody event by the person who looked, through the interface named; the record
        shows it last, and the chain still holds."""
        item_id = ingest(("voice.wav", "dock1", "v.wav"))["v.wav"]
        with Session(ctx.engine) as session:
            detail = queries.item_detail(
                session,
                ident=item_id[:10],
                viewer=Viewer.local("clerk"),
                via="web",
                store=open_store(settings),
                tool=TOOL,
            )
            session.commit()
            assert detail.summary.id == item_id
            assert detail.events[0].action == "ingested"
            last = detail.events[-1]
            assert (last.action, last.actor, last.details) == ("viewed", "clerk", {"via": "web", "client": None})
            assert events_for(session, f"item:{item_id}")[-1].tool == TOOL
            assert check_chain(session).ok
        data = detail.as_json()
        assert data["facts"]["case_number"] == {"value": None, "source": None}
        assert data["store_key"].endswith(data["sha256"]) and data["sightings"][0]["dock"] == "dock1"
        assert data["stages"]["probe"] == "done"
        assert {"missing-case-number", "capture-time-unknown"} <= {i["code"] for i in data["issues"]}

    def test_unknown_item_is_not_found_and_nothing_is_recorded(self, ingest, ctx, settings) -> None:
        ingest(("voice.wav", "dock1", "v.wav"))
        with Session(ctx.engine) as session:
            before = custody_count(session)
            with pytest.raises(NotFoundError, match="no item matches '01ZZZZZZZZ'"):
                queries.item_detail(
                    session,
                    ident="01ZZZZZZZZ",
                    viewer=Viewer.local("clerk"),
                    via="web",
                    store=open_store(settings),
                    tool=TOOL,
                )
            session.commit()
            assert custody_count(session) == before


class TestCases:
    def test_setting_a_target_opens_the_case_and_records_old_and_new(self, ingest, probe_ctx, ctx) -> None:
        """A target for an unknown case opens it; each change is a case-updated event with the old and
        new target; a blank target clears it."""
        item_id = ingest(("voice.wav", "dock1", "v.wav"))["v.wav"]
        assign_facts(probe_ctx, ident=item_id, facts={"case_number": "C1"}, viewer=Viewer.local("clerk"))
        with Session(ctx.engine) as session:
            with pytest.raises(NotFoundError, match="no case 'C9'"):
                queries.case_detail(session, viewer=SERVER, number="C9")
            set_case_target(session, number="C9", target=" 某某公司 ", viewer=Viewer.local("clerk"), tool=TOOL)
            set_case_target(session, number="C1", target="甲", viewer=Viewer.local("clerk"), tool=TOOL)
            set_case_target(session, number="C1", target="乙", viewer=Viewer.local("boss"), tool=TOOL)
            set_case_target(session, number="C1", target="  ", viewer=Viewer.local("boss"), tool=TOOL)
            session.commit()
            assert queries.case_detail(session, viewer=SERVER, number="C9").as_json() == {
                "number": "C9",
                "target": "某某公司",
                "classification": "none",
                "withheld": False,
                "count": 0,
                "items": [],
            }
            changes = [(e.actor, e.details) for e in events_for(session, "case:C1") if e.action == "case-updated"]
            assert changes == [
                ("clerk", '{"target":{"new":"甲","old":null}}'),
                ("boss", '{"target":{"new":"乙","old":"甲"}}'),
                ("boss", '{"target":{"new":null,"old":"乙"}}'),
            ]
            case = queries.case_detail(session, viewer=SERVER, number="C1")
            assert case.target is None and [m.id for m in case.items] == [item_id]

    def test_overdue_groups_late_records_by_officer_and_dock(self, ingest, probe_ctx, ctx) -> None:
        ids = ingest(("voice.wav", "dock1", "a.wav"), ("voice.wav", "dock1", "b.wav"), ("photo.jpg", "dock2", "c.jpg"))
        late = {"captured_at": "2025-09-30T10:00", "collector": "012345"}
        assign_facts(probe_ctx, ident=ids["a.wav"], facts=late, viewer=Viewer.local("clerk"))
        assign_facts(probe_ctx, ident=ids["b.wav"], facts={**late, "collector": "054321"}, viewer=Viewer.local("clerk"))
        assign_facts(probe_ctx, ident=ids["c.jpg"], facts=late, viewer=Viewer.local("clerk"))
        with Session(ctx.engine) as session:
            groups = queries.overdue_groups(session, viewer=SERVER)
        assert [(g.officer, g.dock, [i.id for i in g.items]) for g in groups] == [
            ("012345", "dock1", [ids["a.wav"]]),
            ("012345", "dock2", [ids["c.jpg"]]),
            ("054321", "dock1", [ids["b.wav"]]),
        ]
        first = groups[0]
        assert first.as_json()["count"] == 1 and first.as_json()["working_days_late"] == first.working_days_late
        assert (first.items[0].working_days_late or 0) > 200
        assert first.items[0].as_json()["deadline"] == "2025-10-11T16:00:00+00:00"


class TestPackages:
    def test_packages_are_listed_by_case_with_items_lacking_facts(self, ingest, probe_ctx, ctx, cli) -> None:
        """A built package is listed for its case (not another's) with its verified disc; the items that
        lack required facts are named with exactly which."""
        ids = ingest(("voice.wav", "dock1", "a.wav"), ("photo.jpg", "dock1", "b.jpg"))
        complete = {
            "case_number": "P1",
            "captured_at": "2025-09-30T10:00",
            "collector": "012345",
            "captured_place": "徐汇",
            "proof_object": "现场",
        }
        assign_facts(probe_ctx, ident=ids["a.wav"], facts=complete, viewer=Viewer.local("clerk"))
        assign_facts(probe_ctx, ident=ids["b.jpg"], facts={"case_number": "P1"}, viewer=Viewer.local("clerk"))
        built = cli("package", "P1", "--json")
        assert built.exit_code == 0, built.output
        package_id = str(built.records[-1]["package"])
        with Session(ctx.engine) as session:
            (listed,) = queries.list_packages(session, viewer=SERVER, case_number="P1")
            assert queries.list_packages(session, viewer=SERVER, case_number="P2") == []
            assert listed.id == package_id and listed.status == "verified"
            assert sorted(listed.items) == sorted(ids.values())
            assert [d.verified for d in listed.discs] == [True]
            assert listed.discs[0].as_json()["index"] == 1 and listed.as_json()["case"] == "P1"
            lacking = queries.incomplete_items(session, viewer=SERVER, package_id=package_id)
            assert [e.as_json() for e in lacking] == [
                {"item": ids["b.jpg"], "missing": ["captured_at", "captured_place", "collector", "proof_object"]}
            ]
            with pytest.raises(NotFoundError, match="no package 'NOPE'"):
                queries.incomplete_items(session, viewer=SERVER, package_id="NOPE")


class TestAssign:
    def test_a_new_case_number_opens_the_case_and_manual_values_replace_earlier_ones(
        self, ingest, probe_ctx, ctx
    ) -> None:
        """The first assignment of a case number opens the case (case-opened); a second manual value
        replaces the first; each assignment records old and new values; the issues follow."""
        item_id = ingest(("voice.wav", "dock1", "v.wav"))["v.wav"]
        first = assign_facts(probe_ctx, ident=item_id, facts={"case_number": " A-1 "}, viewer=Viewer.local("clerk"))
        assert first.changes == {"case_number": {"old": None, "new": "A-1"}}
        assert "missing-case-number" not in first.issues and "missing-proof-object" in first.issues
        second = assign_facts(probe_ctx, ident=item_id, facts={"case_number": "A-2"}, viewer=Viewer.local("boss"))
        assert second.as_json()["changes"] == {"case_number": {"old": "A-1", "new": "A-2"}}
        with Session(ctx.engine) as session:
            assert {c.number for c in session.exec(select(Case)).all()} == {"A-1", "A-2"}
            opened = [e for e in events_for(session, "case:A-1") if e.action == "case-opened"]
            assert [(e.actor, e.details) for e in opened] == [("clerk", '{"via":"assign"}')]
            manual = session.exec(
                select(ItemFact).where(ItemFact.item_id == item_id, col(ItemFact.source).like("manual:%"))
            ).all()
            assert [(f.field, f.value, f.source, f.chosen) for f in manual] == [
                ("case_number", "A-2", "manual:boss", True)
            ]
            assigned = [e.actor for e in events_for(session, f"item:{item_id}") if e.action == "assigned"]
            assert assigned == ["clerk", "boss"]
            assert session.get(Item, item_id).case_number == "A-2"  # type: ignore[union-attr]

    def test_a_capture_time_after_arrival_is_a_conflict_and_changes_nothing(
        self, ingest, ctx, settings, monkeypatch
    ) -> None:
        """Beyond the drift tolerated, a record cannot have been captured after it arrived: refused with
        ConflictError, and neither the fact, the case given with it, nor any event is recorded."""
        monkeypatch.setenv("EVIDENCE_CLOCK_DRIFT_TOLERANCE", "0")
        probe_ctx = probe_context(load_settings())
        item_id = ingest(("voice.wav", "dock1", "v.wav"))["v.wav"]
        with Session(ctx.engine) as session:
            received = session.get(Item, item_id).received_at  # type: ignore[union-attr]
            before = custody_count(session)
        assert received is not None
        later = received + (datetime.now(UTC) - received) / 2
        assert later > received
        with pytest.raises(ConflictError, match=rf"^{item_id}: capture time .* is after the record arrived"):
            assign_facts(
                probe_ctx,
                ident=item_id,
                facts={"case_number": "NEW-1", "captured_at": later.isoformat()},
                viewer=Viewer.local("clerk"),
            )
        with Session(ctx.engine) as session:
            item = session.get(Item, item_id)
            assert item is not None and item.captured_at is None and item.case_number is None
            assert session.get(Case, "NEW-1") is None
            assert custody_count(session) == before
            assert not session.exec(select(ItemFact).where(col(ItemFact.source).like("manual:%"))).all()

    def test_unknown_item_is_not_found(self, ingest, probe_ctx) -> None:
        ingest(("voice.wav", "dock1", "v.wav"))
        with pytest.raises(NotFoundError, match="no item matches '01ZZZZZZZZ'"):
            assign_facts(probe_ctx, ident="01ZZZZZZZZ", facts={"case_number": "X"}, viewer=Viewer.local("clerk"))

    def test_facts_that_cannot_be_set_are_refused(self) -> None:
        """Nothing, an unknown field, a blank value, an unreadable or future time: each an InvalidValueError."""
        with pytest.raises(InvalidValueError, match="nothing to assign"):
            checked_facts({}, SHANGHAI)
        with pytest.raises(InvalidValueError, match="colour: not a fact that is set by hand"):
            checked_facts({"colour": "red"}, SHANGHAI)
        with pytest.raises(InvalidValueError, match="collector cannot be empty"):
            checked_facts({"collector": "  "}, SHANGHAI)
        with pytest.raises(InvalidValueError, match="'last tuesday' is not a time: give ISO 8601"):
            checked_facts({"captured_at": "last tuesday"}, SHANGHAI)
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        with pytest.raises(InvalidValueError, match="lies in the future"):
            checked_facts({"captured_at": future}, SHANGHAI)
        assert checked_facts({"captured_at": " 2025-10-02 09:30 ", "collector": " 012345"}, SHANGHAI) == {
            "captured_at": "2025-10-02T09:30:00+08:00",
            "collector": "012345",
        }
