"""The supervision report: every figure equals a count made another way over a small catalog whose
answers are known (the make-up workday before the National Day week, the holiday week itself, a
year without a published calendar, receipts either side of a local midnight), as each role may see
it, on SQLite and PostgreSQL; and the command writes it as a table, JSON and CSV."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from pipeline.catalog.models import (
    REQUIRED_FACTS,
    Case,
    CustodyEvent,
    Derivative,
    Dock,
    Item,
    ItemIssue,
    Package,
    PackageDisc,
)
from pipeline.catalog.people import Classification, Role
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.deadline import SHANGHAI, WorkCalendar, assess_lateness, upload_deadline
from pipeline.errors import ForbiddenError, InvalidValueError
from pipeline.reports import Grouping, Period, build_report, record_report_view
from pipeline.stage import issues

SERVER = Viewer.local("clerk")
AUDITOR = Viewer(
    name="aud",
    roles=frozenset({Role.AUDITOR}),
    clearances=frozenset({Classification.PRIVACY, Classification.TRADE_SECRET}),
    user_id="U-AUD",
)
CUSTODIAN = Viewer(name="cust", roles=frozenset({Role.CUSTODIAN}), user_id="U-CUST")
HANDLER = Viewer(name="handler", roles=frozenset({Role.CASE_HANDLER}), user_id="U-H")
ADMIN = Viewer(name="admin", roles=frozenset({Role.ADMIN}), user_id="U-ADM")
HOSTILE = '<script>alert("x")</script>&'
PERIOD = Period(date(2025, 9, 1), date(2025, 10, 31), SHANGHAI)
CASES = {
    "C1": ("王五公司", "none"),
    "C2": ("<b>T</b>", "none"),
    "SC-3": ("秘密目标", "trade-secret"),
}


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Row:
    """One record of the hand-built catalog, with the answers worked out by hand."""

    name: str
    received: datetime
    captured: datetime | None
    officer: str | None
    dock: str = "dock1"
    case: str | None = "C1"
    kind: str = "video"
    size: int = 1000
    duration: float | None = 10.0
    place: str | None = "路口"
    proof: str | None = "违停"
    late: bool | None = None  # by hand
    days_late: int | None = None  # by hand
    provisional: bool = False
    damaged: bool = False

    @property
    def secret(self) -> bool:
        return self.case is not None and CASES[self.case][1] == "trade-secret"


ROWS = (
    # Friday capture: Sunday 28 September is a make-up workday, so the deadline is Tuesday 30th.
    Row("on-time-makeup", local(2025, 9, 29, 9), local(2025, 9, 26, 10), "张三", late=False, days_late=0),
    # Same capture, received after the National Day week (1-8 October): one working day late.
    Row("late-holiday", local(2025, 10, 9, 9), local(2025, 9, 26, 10), "张三", size=2000, late=True, days_late=1),
    # Tuesday 30 September: the third working day is Saturday 11 October, a make-up workday.
    Row(
        "saturday-workday",
        local(2025, 10, 11, 20),
        local(2025, 9, 30, 10),
        HOSTILE,
        dock="dock2",
        case="C2",
        kind="audio",
        size=300,
        duration=5.5,
        late=False,
        days_late=0,
    ),
    # Same capture, received Monday 13th (Sunday 12th is off): one working day late.
    Row(
        "late-monday",
        local(2025, 10, 13, 8),
        local(2025, 9, 30, 10),
        HOSTILE,
        dock="dock2",
        case=None,
        proof=None,
        kind="audio",
        size=400,
        duration=4.5,
        late=True,
        days_late=1,
    ),
    # Thursday 9 October: due Monday 13th (the 11th counts); received Monday 20th: five days late.
    Row("late-five", local(2025, 10, 20, 10), local(2025, 10, 9, 10), "李四", size=500, late=True, days_late=5),
    # No capture time: no deadline; no place, officer or proof either; damaged.
    Row(
        "no-time",
        local(2025, 10, 5, 12),
        None,
        None,
        kind="image",
        size=50,
        duration=None,
        place=None,
        proof=None,
        damaged=True,
    ),
    # A trade-secret case's record: withheld from an auditor without a grant, unknown to others.
    Row(
        "secret", local(2025, 10, 10, 9), local(2025, 10, 9, 10), "密探", case="SC-3", size=700, late=False, days_late=0
    ),
    # Just before the period: 23:30 on 31 August in Beijing is still August there.
    Row("before", local(2025, 8, 31, 23, 30), local(2025, 8, 29, 10), "张三", size=7, late=False, days_late=0),
    # Just after: 00:10 on 1 November in Beijing is 31 October in UTC.
    Row("after", local(2025, 11, 1, 0, 10), local(2025, 10, 30, 10), "李四", size=9, late=False, days_late=0),
    # A year without a published calendar: the deadline is provisional (Monday to Friday only).
    Row(
        "provisional",
        local(2030, 3, 11, 9),
        local(2030, 3, 1, 10),
        "李四",
        size=11,
        late=True,
        days_late=3,
        provisional=True,
    ),
)
IN_PERIOD = [r for r in ROWS if r.name not in ("before", "after", "provisional")]


def catalogue(session: Session) -> dict[str, str]:
    """The rows as items, with their deadlines worked out by the deadline rules; their IDs by name."""
    calendar = WorkCalendar()
    session.add(Dock(id="dock1"))
    session.add(Dock(id="dock2"))
    for number, (target, classification) in CASES.items():
        session.add(Case(number=number, target=target, classification=classification))
    ids: dict[str, str] = {}
    for n, row in enumerate(ROWS):
        values: dict[str, Any] = {}
        if row.captured is not None:
            deadline = upload_deadline(row.captured, calendar=calendar)
            lateness = assess_lateness(deadline, row.received, calendar=calendar)
            # the rules agree with the answers worked out by hand
            assert (lateness.late, lateness.working_days_late, deadline.provisional) == (
                row.late,
                row.days_late,
                row.provisional,
            ), row.name
            values = {
                "captured_at": row.captured,
                "deadline": deadline.due,
                "deadline_provisional": deadline.provisional,
                "late": lateness.late,
                "working_days_late": lateness.working_days_late,
            }
        item = Item(
            sha256=f"{n:064x}",
            size=row.size,
            original_name=f"{row.name}.bin",
            original_name_raw=row.name.encode(),
            media_kind=row.kind,
            dock_id=row.dock,
            created_at=row.received + timedelta(minutes=1),
            received_at=row.received,
            case_number=row.case,
            captured_place=row.place,
            collector=row.officer,
            proof_object=row.proof,
            classification="none",
            media={} if row.duration is None else {"duration": row.duration},
            **values,
        )
        session.add(item)
        ids[row.name] = item.id
    session.flush()
    session.add(ItemIssue(item_id=ids["no-time"], code=issues.DAMAGED_MEDIA, message="bad"))
    session.add(ItemIssue(item_id=ids["late-five"], code=issues.LATE, message="late"))
    session.add(ItemIssue(item_id=ids["on-time-makeup"], code=issues.FIXITY_MISMATCH, message="altered"))
    session.add(ItemIssue(item_id=ids["before"], code=issues.FIXITY_MISSING, message="gone"))  # before the period
    for name, status, size in (("on-time-makeup", "verified", 100), ("late-holiday", "failed", 999)):
        session.add(
            Derivative(item_id=ids[name], kind="access", profile="web", profile_version=1, status=status, size=size)
        )
    package = Package(
        case_number="C1",
        item_ids=[ids["on-time-makeup"]],
        requested_by="cust",
        requested_at=local(2025, 10, 21, 9),
        producer="unit",
        media="dvd",
        capacity=4_700_000_000,
        out_dir="out",
        status="verified",
        disc_count=1,
    )
    session.add(package)
    session.flush()
    session.add(
        PackageDisc(
            package_id=package.id,
            disc_index=1,
            label="C1_1",
            path="p",
            size=500,
            sha256="0" * 64,
            file_count=2,
            verified=True,
        )
    )
    session.commit()
    with CustodyLog(session, "aud") as log:
        for action, target in (
            ("viewed", "on-time-makeup"),
            ("viewed", "late-holiday"),
            ("played", "no-time"),
            ("downloaded", "secret"),
        ):
            log.record(action, f"item:{ids[target]}", {"via": "web"})
        log.record("access-requested", "case:SC-3", {})
        log.record("assigned", f"item:{ids['no-time']}", {})  # not a retrieval
    session.commit()
    # The log takes the time it is written: the events are moved into the period by hand, the
    # first view before it.
    events = session.exec(select(CustodyEvent).order_by(col(CustodyEvent.seq))).all()
    for n, event in enumerate(events):
        event.at = local(2025, 8, 1, 9).astimezone(UTC) if n == 0 else local(2025, 10, 15, 9).astimezone(UTC)
        session.add(event)
    session.commit()
    return ids


@pytest.fixture
def session(ctx: Any) -> Iterator[Session]:
    with Session(ctx.engine) as found:
        catalogue(found)
        yield found


def seen_by(viewer: Viewer, rows: list[Row] | tuple[Row, ...]) -> tuple[list[Row], list[Row]]:
    """The rows ``viewer`` may know exist, and of those the ones withheld (worked out in Python)."""
    if viewer.server:
        return list(rows), []
    if not viewer.has(Role.CUSTODIAN, Role.AUDITOR):
        return [], []
    visible = [r for r in rows if not r.secret or Classification.TRADE_SECRET in viewer.clearances]
    return visible, [r for r in visible if r.secret]


class TestFigures:
    @pytest.mark.parametrize("viewer", [SERVER, AUDITOR, CUSTODIAN], ids=["server", "auditor", "custodian"])
    def test_every_total_equals_a_count_over_the_rows(self, session: Session, viewer: Viewer) -> None:
        """Received, on time, late, the rate, withheld, each missing fact, damaged, by kind and the
        storage equal what the rows say for each reader."""
        report = build_report(session, viewer=viewer, period=PERIOD)
        visible, withheld = seen_by(viewer, IN_PERIOD)
        shown = [r for r in visible if r not in withheld]
        assert report.received == len(visible)
        assert report.withheld == len(withheld)
        assert report.on_time == sum(r.late is False for r in shown)
        assert report.late == sum(r.late is True for r in shown)
        assert report.on_time_rate == pytest.approx(report.on_time / (report.on_time + report.late))
        fact_of = {
            "case_number": lambda r: r.case,
            "captured_at": lambda r: r.captured,
            "captured_place": lambda r: r.place,
            "collector": lambda r: r.officer,
            "proof_object": lambda r: r.proof,
        }
        assert report.missing == {f: sum(fact_of[f](r) is None for r in shown) for f in REQUIRED_FACTS}
        assert report.damaged == sum(r.damaged for r in visible)
        assert report.provisional_pending == 0
        kinds = Counter(r.kind for r in visible)
        assert {k.kind: k.received for k in report.by_kind} == dict(kinds)
        assert {k.kind: k.bytes for k in report.by_kind} == {
            kind: sum(r.size for r in visible if r.kind == kind) for kind in kinds
        }
        assert {k.kind: k.duration_seconds for k in report.by_kind} == {
            kind: pytest.approx(sum(r.duration or 0 for r in visible if r.kind == kind)) for kind in kinds
        }
        before = [r for r in seen_by(viewer, ROWS)[0] if r.name == "before"]
        # originals before and in the period, and the one verified access copy (the failed one is not stored)
        assert report.storage_bytes == sum(r.size for r in before + visible) + 100
        assert report.late_days == dict(Counter(r.days_late for r in shown if r.late))

    def test_the_known_answers(self, session: Session) -> None:
        """By hand: 7 received in the period, 3 on time, 3 late (1, 1 and 5 working days), 1 of
        unknown deadline; September holds one record, October six."""
        report = build_report(session, viewer=SERVER, period=PERIOD)
        assert (report.received, report.on_time, report.late) == (7, 3, 3)
        assert report.on_time_rate == pytest.approx(0.5)
        assert report.late_days == {1: 2, 5: 1}
        assert (report.damaged, report.derivatives_failed, report.fixity_problems) == (1, 1, 1)
        worst = [(r.item, r.collector, r.working_days_late) for r in report.worst_late]
        names = dict(session.exec(select(Item.id, Item.original_name)).all())
        item, who, days = worst[0]
        assert (names[item], who, days) == ("late-five.bin", "李四", 5)
        assert sorted(days for _, _, days in worst) == [1, 1, 5]
        assert report.missing == {
            "case_number": 1,
            "captured_at": 1,
            "captured_place": 1,
            "collector": 1,
            "proof_object": 2,
        }
        months = [(m.month, m.received, m.on_time, m.late, m.bytes_added) for m in report.months]
        assert months == [("2025-09", 1, 1, 0, 1100), ("2025-10", 6, 2, 3, 3950)]
        assert report.months[-1].storage_bytes == report.storage_bytes == 7 + 1100 + 3950

    def test_receipt_days_are_local_days(self, session: Session) -> None:
        """23:30 on 31 August in Beijing (15:30 UTC) is August; 00:10 on 1 November (31 October in
        UTC) is November: a period of one local day holds exactly that day's records."""
        day = Period(date(2025, 8, 31), date(2025, 8, 31), SHANGHAI)
        assert build_report(session, viewer=SERVER, period=day).received == 1
        day = Period(date(2025, 11, 1), date(2025, 11, 1), SHANGHAI)
        assert build_report(session, viewer=SERVER, period=day).received == 1
        day = Period(date(2025, 10, 31), date(2025, 10, 31), SHANGHAI)
        assert build_report(session, viewer=SERVER, period=day).received == 0

    def test_an_open_period_spans_every_month_and_counts_the_provisional_year(self, session: Session) -> None:
        """Without bounds: every record, a month for each month from the first receipt to the last,
        and the record of a year without a published calendar pending review."""
        report = build_report(session, viewer=SERVER, period=Period(None, None, SHANGHAI), by="month")
        assert report.received == len(ROWS)
        assert report.provisional_pending == 1
        assert report.months[0].month == "2025-08" and report.months[-1].month == "2030-03"
        assert len(report.months) == 12 * 4 + 8
        assert sum(m.received for m in report.months) == len(ROWS)
        assert {g.key: g.received for g in report.groups} == {
            "2025-08": 1,
            "2025-09": 1,
            "2025-10": 6,
            "2025-11": 1,
            "2030-03": 1,
        }
        assert report.late_days[3] == 1

    @pytest.mark.parametrize("by", list(Grouping))
    def test_groups_add_up_and_match_the_rows(self, session: Session, by: Grouping) -> None:
        """Each group's received, on time, late and worst lateness equal the rows' of that key, and
        the groups add up to the totals."""
        report = build_report(session, viewer=AUDITOR, period=PERIOD, by=by)
        visible, withheld = seen_by(AUDITOR, IN_PERIOD)
        key_of = {
            Grouping.OFFICER: lambda r: r.officer,
            Grouping.DOCK: lambda r: r.dock,
            Grouping.CASE: lambda r: r.case,
            Grouping.TARGET: lambda r: CASES[r.case][0] if r.case else None,
            Grouping.MONTH: lambda r: f"{r.received:%Y-%m}",
        }[by]
        expected: dict[tuple[str | None, bool], list[Row]] = {}
        for row in visible:
            hidden = row in withheld and by in (Grouping.OFFICER, Grouping.CASE, Grouping.TARGET)
            expected.setdefault((None if hidden else key_of(row), hidden), []).append(row)
        found = {(g.key, g.withheld): g for g in report.groups}
        assert set(found) == set(expected)
        for key, rows in expected.items():
            shown = [r for r in rows if r not in withheld]
            group = found[key]
            assert group.received == len(rows)
            assert group.on_time == sum(r.late is False for r in shown)
            assert group.late == sum(r.late is True for r in shown)
            assert group.working_days_late_max == max((r.days_late or 0 for r in shown if r.late), default=None)
        assert sum(g.received for g in report.groups) == report.received

    def test_officer_groups_by_hand(self, session: Session) -> None:
        """张三: 2 (1 late by 1); the hostile name: 2 (1 late by 1); 李四: 1 late by 5; unknown: 1."""
        report = build_report(session, viewer=SERVER, period=PERIOD, by="officer")
        rows = {g.key: (g.received, g.on_time, g.late, g.working_days_late_max) for g in report.groups}
        assert rows == {
            "张三": (2, 1, 1, 1),
            HOSTILE: (2, 1, 1, 1),
            "李四": (1, 0, 1, 5),
            "密探": (1, 1, 0, None),
            None: (1, 0, 0, None),
        }


class TestWhoSeesWhat:
    def test_a_custodian_without_clearance_never_sees_the_secret_case_named_or_counted(self, session: Session) -> None:
        """The trade-secret case, its target and its officer appear in no grouping, and its record
        is not counted, for a custodian without that clearance."""
        for by in Grouping:
            report = build_report(session, viewer=CUSTODIAN, period=PERIOD, by=by)
            text = json.dumps(report.as_json(), ensure_ascii=False)
            assert not any(name in text for name in ("SC-3", "秘密目标", "密探"))
            assert report.received == 6 and report.withheld == 0

    def test_an_auditor_without_a_grant_sees_the_secret_record_counted_but_not_named(self, session: Session) -> None:
        """Cleared but without a grant: the record counts as received and withheld, in a group of
        its own, never under its case, target or officer, and its lateness is not used."""
        for by in (Grouping.CASE, Grouping.TARGET, Grouping.OFFICER):
            report = build_report(session, viewer=AUDITOR, period=PERIOD, by=by)
            text = json.dumps(report.as_json(), ensure_ascii=False)
            assert not any(name in text for name in ("SC-3", "秘密目标", "密探"))
            assert report.received == 7 and report.withheld == 1 and report.on_time == 2
            assert [g.received for g in report.groups if g.withheld] == [1]

    def test_only_admins_auditors_and_custodians_read_reports(self, session: Session) -> None:
        """A case handler is refused; an admin without a content role counts no records but reads
        the retrievals, which only admins and auditors may."""
        with pytest.raises(ForbiddenError):
            build_report(session, viewer=HANDLER, period=PERIOD)
        admin = build_report(session, viewer=ADMIN, period=PERIOD)
        assert admin.received == 0 and admin.storage_bytes == 0 and admin.packages.requested == 0
        assert admin.retrievals == {"access-requested": 1, "downloaded": 1, "played": 1, "viewed": 1}
        custodian = build_report(session, viewer=CUSTODIAN, period=PERIOD)
        assert custodian.retrievals is None and custodian.retrievals_by_classification is None

    def test_retrievals_in_the_period_per_action_user_and_class(self, session: Session) -> None:
        """Views and plays in the period, per action and per user; other actions and earlier views
        are not counted."""
        report = build_report(session, viewer=AUDITOR, period=PERIOD)
        assert report.retrievals == {"access-requested": 1, "downloaded": 1, "played": 1, "viewed": 1}
        assert report.retrievals_by_user == {"aud": 4}
        # The secret record's download and its case's access request count under the case's class,
        # though the auditor holds no grant for that record: counted, never named.
        assert report.retrievals_by_classification == {"none": 2, "trade-secret": 2}
        assert "SC-3" not in json.dumps(report.as_json()["retrievals_by_classification"])
        everything = build_report(session, viewer=AUDITOR, period=Period(None, None, SHANGHAI))
        assert everything.retrievals == {"access-requested": 1, "downloaded": 1, "played": 1, "viewed": 2}
        assert everything.retrievals_by_classification == {"none": 3, "trade-secret": 2}

    def test_packages_queues_and_the_view_itself(self, session: Session) -> None:
        """The verified package and its disc are counted; the queues count as the item lists do;
        showing the report is a custody event."""
        report = build_report(session, viewer=SERVER, period=PERIOD)
        assert report.packages.as_json() == {
            "requested": 1,
            "verified": 1,
            "failed": 0,
            "discs": 1,
            "discs_verified": 1,
            "bytes": 500,
        }
        queues = {q.name: q.size for q in report.queues}
        assert queues["missing.case_number"] == sum(r.case is None for r in ROWS)
        assert queues["late"] == sum(bool(r.late) for r in ROWS)
        assert queues["damaged"] == 1
        assert queues["unclassified"] == 0
        record_report_view(session, viewer=AUDITOR, report=report, form="json", via="cli", tool="test")
        session.commit()
        event = session.exec(select(CustodyEvent).where(CustodyEvent.action == "report-viewed")).one()
        assert event.actor == "aud" and json.loads(event.details)["format"] == "json"

    def test_a_period_that_ends_before_it_starts_or_an_unknown_grouping_is_refused(self, session: Session) -> None:
        """Refused with a plain error before anything is read."""
        with pytest.raises(InvalidValueError):
            Period(date(2025, 10, 2), date(2025, 10, 1), SHANGHAI)
        with pytest.raises(InvalidValueError):
            build_report(session, viewer=SERVER, period=PERIOD, by="weather")


# The keys of `evidence report --format json`: a contract (README).
JSON_KEYS = {
    "period",
    "by",
    "produced_at",
    "received",
    "on_time",
    "late",
    "on_time_rate",
    "withheld",
    "missing",
    "damaged",
    "derivatives_failed",
    "fixity_problems",
    "worst_late",
    "provisional_pending",
    "unclassified",
    "groups",
    "late_days",
    "by_kind",
    "months",
    "retrievals",
    "retrievals_by_user",
    "retrievals_by_classification",
    "storage_bytes",
    "storage_growth_per_month",
    "storage_projection",
    "queues",
    "packages",
}
GROUP_KEYS = {"key", "received", "on_time", "late", "working_days_late_max", "withheld"}


def run_report(*args: str) -> Any:
    """``evidence report`` with ``args``, run in this process (as the server's own authority)."""
    from click.testing import CliRunner

    from pipeline.cli.report import report

    return CliRunner().invoke(report, list(args), catch_exceptions=False)


class TestCommand:
    def test_json_is_one_object_with_the_documented_keys(self, session: Session) -> None:
        """One JSON object; its keys, the groups' keys and the figures are the report's; the
        showing is recorded in the custody log."""
        result = run_report("--from", "2025-09-01", "--to", "2025-10-31", "--by", "dock", "--format", "json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert set(data) == JSON_KEYS
        assert data["period"] == {"from": "2025-09-01", "to": "2025-10-31", "day": "receipt", "zone": "Asia/Shanghai"}
        assert (data["received"], data["on_time"], data["late"], data["on_time_rate"]) == (7, 3, 3, 0.5)
        assert data["missing"]["proof_object"] == 2 and set(data["missing"]) == set(REQUIRED_FACTS)
        assert all(set(g) == GROUP_KEYS for g in data["groups"])
        assert {g["key"]: g["received"] for g in data["groups"]} == {"dock1": 5, "dock2": 2}
        assert data["retrievals"] == {"access-requested": 1, "downloaded": 1, "played": 1, "viewed": 1}
        assert data["retrievals_by_classification"] == {"none": 2, "trade-secret": 2}
        session.expire_all()
        assert session.exec(select(CustodyEvent).where(CustodyEvent.action == "report-viewed")).one().actor

    def test_csv_has_a_header_and_a_row_per_group(self, session: Session) -> None:
        """Python's csv module reads a header and one row per officer; a name a spreadsheet would
        run as a formula is quoted; the hostile name comes back as it is otherwise."""
        import csv
        import io

        result = run_report("--from", "2025-09-01", "--to", "2025-10-31", "--format", "csv")
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert list(rows[0]) == [
            "key",
            "withheld",
            "received",
            "on_time",
            "late",
            "on_time_rate",
            "working_days_late_max",
        ]
        by_key = {r["key"]: r for r in rows}
        assert set(by_key) == {"张三", HOSTILE, "李四", "密探", ""}
        assert (by_key["李四"]["received"], by_key["李四"]["late"], by_key["李四"]["working_days_late_max"]) == (
            "1",
            "1",
            "5",
        )
        assert by_key["张三"]["on_time_rate"] == "0.5000"

    def test_a_table_for_people_and_bad_flags_refused(self, session: Session, tmp_path: Any) -> None:
        """The table names the figures in both languages; a period that ends before it starts, a
        date that is not one, and a PDF without a file are refused before anything is read."""
        out = tmp_path / "r.txt"
        result = run_report("--from", "2025-09-01", "--to", "2025-10-31", "--out", str(out))
        assert result.exit_code == 0 and result.stdout == ""
        table = out.read_text(encoding="utf-8")
        assert "按时率 On-time rate: 50.0%" in table and "李四" in table
        assert run_report("--from", "2025-10-02", "--to", "2025-10-01").exit_code == 2
        assert run_report("--from", "October").exit_code == 2
        assert run_report("--format", "pdf").exit_code == 2  # a PDF goes to a file

    def test_html_escapes_hostile_names_and_draws_the_charts(self, session: Session, tmp_path: Any) -> None:
        """The HTML document holds the three charts (a bar per officer, a point per month, a bin
        per day late up to the worst) and never the hostile name unescaped."""
        out = tmp_path / "r.html"
        result = run_report("--from", "2025-09-01", "--to", "2025-10-31", "--format", "html", "--out", str(out))
        assert result.exit_code == 0, result.output
        page = out.read_text(encoding="utf-8")
        assert "<script>" not in page and "&lt;script&gt;" in page
        assert page.count('<g class="bar">') == 5
        assert page.count('class="point"') == 2
        assert page.count('class="bin"') == 6  # 0 to 5 working days late
        assert "Noto Sans CJK SC" in page and "执法音视频记录统计与监督报告" in page
        assert "缺少案件编号 Missing case number" in page and "missing.case_number" not in page
        assert "<td>商业秘密 Trade secret</td>" in page  # retrievals by class, named in both languages

    def test_pdf_is_a4_with_the_unit_period_and_chinese_headings(
        self, session: Session, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The PDF reads back (pypdf) with the unit's name, the period, a Chinese heading and page
        numbers, on A4; poppler renders its first page."""
        import subprocess

        from pypdf import PdfReader

        monkeypatch.setenv("EVIDENCE_UNIT_NAME", "城关派出所 Chengguan Station")
        out = tmp_path / "r.pdf"
        result = run_report("--from", "2025-09-01", "--to", "2025-10-31", "--format", "pdf", "--out", str(out))
        assert result.exit_code == 0, result.output
        reader = PdfReader(out)
        first = reader.pages[0]
        assert (round(float(first.mediabox.width)), round(float(first.mediabox.height))) == (595, 842)  # A4
        text = first.extract_text()
        assert "城关派出所 Chengguan Station" in text and "2025-09-01" in text and "2025-10-31" in text
        assert "执法音视频记录统计与监督报告" in text
        assert f"1 / {len(reader.pages)}" in text
        page = tmp_path / "page"
        subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(out), str(page)], check=True)
        (png,) = tmp_path.glob("page*.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_run_as_evidence_report(self, session: Session, cli: Any) -> None:
        """The command is listed under `evidence` and runs from there (open period: every record)."""
        result = cli("report", "--by", "month", "--format", "json")
        assert result.exit_code == 0, result.errors
        assert json.loads(result.output)["received"] == len(ROWS)


class TestCharts:
    def test_the_days_late_axis_stays_readable_over_a_wide_range(self) -> None:
        """Records 0 to 184 working days late: one bin a day, but a day's number only where it has
        room (labels at least as far apart as the widest is long), the first day among them."""
        import itertools
        import re

        from pipeline.reports.charts import histogram

        svg = histogram({0: 1, 3: 2, 184: 1}, "late")
        assert svg.count('class="bin"') == 185
        tick = r'<text x="([\d.]+)" y="\d+" text-anchor="middle">(\d+)</text>'
        ticks = [(float(x), day) for x, day in re.findall(tick, svg)]
        assert ticks[0][1] == "0" and 5 < len(ticks) < 40
        assert min(b[0] - a[0] for a, b in itertools.pairwise(ticks)) >= 3 * 7
        few = histogram({0: 1, 5: 2}, "late")
        assert re.findall(r'text-anchor="middle">(\d+)</text>', few) == ["0", "1", "2", "3", "4", "5"]

    def test_labels_are_escaped_cut_and_free_of_controls(self) -> None:
        """A label with markup, control characters and a great length is drawn as escaped text of
        at most 16 characters; its whole (escaped) is in the bar's title; the SVG parses as XML."""
        from xml.etree import ElementTree

        from pipeline.reports.charts import Bar, bar_chart, histogram, line_chart

        hostile = '<img src=x onerror="alert(1)">\x00\x1b[31m' + "长" * 100
        svg = bar_chart([Bar(hostile, 1, 2, 3), Bar("王五", 0, 0, 1)], "标题 <b>")
        tree = ElementTree.fromstring(svg)
        assert "<img" not in svg and "\x00" not in svg and "\x1b" not in svg
        assert len(tree.findall("{http://www.w3.org/2000/svg}g")) == 2
        labels = [t.text or "" for t in tree.iter("{http://www.w3.org/2000/svg}text")]
        assert "王五" in labels and any(label.startswith("<img src=x") and len(label) == 16 for label in labels)
        for drawn in (line_chart([("2025-10", 3, 0.5), ("<m>", 1, None)], "x"), histogram({0: 1, 4: 2}, "<h>")):
            ElementTree.fromstring(drawn)
            assert "<m>" not in drawn and "<h>" not in drawn
