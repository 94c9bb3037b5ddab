"""The supervision report's figures, counted by the catalog in SQL aggregates (never item by item in
Python): records received, on time and late, missing facts, damaged media, groups by officer, dock,
case, target or month, retrievals, storage, review queues and disc packages.

The period is of **receipt days**: the local date (in the site's zone) on which a record reached the
platform (``Item.received_at``: its first arrival at a dock; the catalogue time where that is
unknown). Every record falls in exactly one period, also those without a capture time, and a late
record is counted in the period it arrived. ``from`` and ``to`` are both included.

What the viewer is shown follows ACCESS.md, with the item lists' own filters
(:mod:`pipeline.catalog.access`):

- Only admins, auditors and custodians may read the report (:class:`ForbiddenError` otherwise).
- Every figure about records counts only the records the viewer may know exist
  (:func:`~pipeline.catalog.access.visible_items`), as the item lists do: a record of a class the
  viewer is not cleared for is never counted, and an admin without a content role counts none.
- A secret record the viewer holds no grant for (*withheld*: listed by ID and class only) is
  counted in ``received``, ``withheld``, by kind and in storage, but none of its facts is used:
  it is not counted on time, late, missing a fact or pending review, and in a grouping by officer,
  case or target it falls in one group with key None marked ``withheld``, never under its officer,
  case or target.
- Retrievals are counted from the custody log only for admins and auditors (the retrieval history
  is theirs); for anyone else ``retrievals`` is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, not_, null
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, func, select

from pipeline.catalog.access import (
    RETRIEVALS,
    case_class,
    effective_class,
    require_role,
    visible_items,
    visible_packages,
    withheld_items,
)
from pipeline.catalog.models import (
    REQUIRED_FACTS,
    Case,
    CustodyEvent,
    Derivative,
    DerivativeStatus,
    Item,
    ItemIssue,
    Package,
    PackageDisc,
    PackageStatus,
)
from pipeline.catalog.people import Classification, Role
from pipeline.catalog.queries import ItemFilter, count_items
from pipeline.catalog.types import UTCDateTime, iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import InvalidValueError
from pipeline.stage import issues

# The roles that may read the report (ACCESS.md: reports).
REPORT_READERS = (Role.ADMIN, Role.CUSTODIAN, Role.AUDITOR)
# The custody actions counted as retrievals: views, plays, downloads, package requests, the access
# requests and their decisions, and the views of this report itself.
RETRIEVAL_ACTIONS = tuple(
    sorted(RETRIEVALS | {"package-requested", "access-requested", "access-approved", "access-denied", "report-viewed"})
)
DAMAGE = (issues.DAMAGED_MEDIA, issues.TRUNCATED_STREAM)
STORE = issues.STORE  # a fixity check found the stored copy altered or missing
WORST_LATE = 10  # the latest records listed by name
MAX_MONTHS = 1200  # months one report may span (a hundred years)
PROJECTION_MONTHS = 12  # how far the storage projection looks ahead


class Grouping(StrEnum):
    """What the report's ``groups`` are keyed by."""

    OFFICER = "officer"
    DOCK = "dock"
    CASE = "case"
    TARGET = "target"
    MONTH = "month"


# Groupings by a fact of the record: a withheld record is never counted under its key.
FACT_GROUPINGS = frozenset({Grouping.OFFICER, Grouping.CASE, Grouping.TARGET})


def typed_day(value: str, what: str) -> date:
    """A day a person typed (YYYY-MM-DD); :class:`InvalidValueError` naming ``what`` (the period's
    side) when it is not one."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(f"the {what} day must be a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class Period:
    """Receipt days from ``start`` to ``end``, both included (None: open on that side), in the
    zone ``zone``."""

    start: date | None
    end: date | None
    zone: tzinfo

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidValueError(f"the period starts ({self.start}) after it ends ({self.end})")

    @property
    def since(self) -> datetime | None:
        """The first instant of the period, in UTC."""
        return None if self.start is None else _midnight(self.start, self.zone)

    @property
    def until(self) -> datetime | None:
        """The first instant after the period, in UTC."""
        return None if self.end is None else _midnight(self.end + timedelta(days=1), self.zone)

    def as_json(self) -> dict[str, object]:
        return {
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "day": "receipt",
            "zone": str(self.zone),
        }


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Group:
    """One group's figures; ``key`` is None for records without that fact, or (``withheld``) for
    the records whose facts are withheld from the viewer."""

    key: str | None
    received: int
    on_time: int
    late: int
    working_days_late_max: int | None
    withheld: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "received": self.received,
            "on_time": self.on_time,
            "late": self.late,
            "working_days_late_max": self.working_days_late_max,
            "withheld": self.withheld,
        }


@dataclass(frozen=True)
class KindFigures:
    """Records of one media kind: how many, their bytes and their seconds of recording."""

    kind: str
    received: int
    bytes: int
    duration_seconds: float

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "received": self.received,
            "bytes": self.bytes,
            "duration_seconds": self.duration_seconds,
        }


@dataclass(frozen=True)
class MonthFigures:
    """One local month of the period: records received, on time and late, the bytes they (and
    their verified derivatives) added, and the storage in use at the month's end."""

    month: str  # YYYY-MM
    received: int
    on_time: int
    late: int
    bytes_added: int
    storage_bytes: int

    @property
    def on_time_rate(self) -> float | None:
        return _rate(self.on_time, self.late)

    def as_json(self) -> dict[str, object]:
        return {
            "month": self.month,
            "received": self.received,
            "on_time": self.on_time,
            "late": self.late,
            "on_time_rate": self.on_time_rate,
            "bytes_added": self.bytes_added,
            "storage_bytes": self.storage_bytes,
        }


@dataclass(frozen=True)
class QueueSize:
    """A review queue now (not bound to the period): how many records the viewer may see in it and
    since when its oldest has waited."""

    name: str
    size: int
    oldest: datetime | None

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "oldest": iso(self.oldest)}


@dataclass(frozen=True)
class PackageFigures:
    """Disc packages requested in the period (those the viewer may know exist)."""

    requested: int
    verified: int
    failed: int
    discs: int
    discs_verified: int
    bytes: int

    def as_json(self) -> dict[str, object]:
        return {
            "requested": self.requested,
            "verified": self.verified,
            "failed": self.failed,
            "discs": self.discs,
            "discs_verified": self.discs_verified,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class LateRecord:
    """One of the period's latest records (never a withheld one: its facts are not the viewer's)."""

    item: str
    collector: str | None
    case_number: str | None
    working_days_late: int

    def as_json(self) -> dict[str, object]:
        return {
            "item": self.item,
            "collector": self.collector,
            "case_number": self.case_number,
            "working_days_late": self.working_days_late,
        }


@dataclass(frozen=True)
class Report:
    """The figures of one period and grouping, as one viewer may see them (see the module's
    docstring). ``on_time_rate`` is ``on_time / (on_time + late)``: the share of the records whose
    deadline is known (capture time known) that arrived by it; None when there are none."""

    period: Period
    by: Grouping
    received: int
    on_time: int
    late: int
    withheld: int
    missing: dict[str, int]
    damaged: int
    derivatives_failed: int
    fixity_problems: int
    provisional_pending: int
    unclassified: int
    groups: tuple[Group, ...]
    late_days: dict[int, int]
    by_kind: tuple[KindFigures, ...]
    months: tuple[MonthFigures, ...]
    storage_bytes: int
    retrievals: dict[str, int] | None
    retrievals_by_user: dict[str, int] | None
    queues: tuple[QueueSize, ...]
    packages: PackageFigures
    worst_late: tuple[LateRecord, ...] = ()
    retrievals_by_classification: dict[str, int] | None = None
    produced_at: datetime = field(default_factory=utcnow)

    @property
    def on_time_rate(self) -> float | None:
        return _rate(self.on_time, self.late)

    @property
    def storage_growth(self) -> float:
        """Bytes added per month on average over the period's months (0 without months)."""
        return sum(m.bytes_added for m in self.months) / len(self.months) if self.months else 0.0

    def as_json(self) -> dict[str, object]:
        """The report as JSON: the key names are a contract (README)."""
        return {
            "period": self.period.as_json(),
            "by": self.by.value,
            "produced_at": iso(self.produced_at),
            "received": self.received,
            "on_time": self.on_time,
            "late": self.late,
            "on_time_rate": self.on_time_rate,
            "withheld": self.withheld,
            "missing": dict(self.missing),
            "damaged": self.damaged,
            "derivatives_failed": self.derivatives_failed,
            "fixity_problems": self.fixity_problems,
            "provisional_pending": self.provisional_pending,
            "unclassified": self.unclassified,
            "groups": [g.as_json() for g in self.groups],
            "late_days": {str(days): count for days, count in sorted(self.late_days.items())},
            "by_kind": [k.as_json() for k in self.by_kind],
            "months": [m.as_json() for m in self.months],
            "retrievals": None if self.retrievals is None else dict(self.retrievals),
            "retrievals_by_user": None if self.retrievals_by_user is None else dict(self.retrievals_by_user),
            "retrievals_by_classification": (
                None if self.retrievals_by_classification is None else dict(self.retrievals_by_classification)
            ),
            "storage_bytes": self.storage_bytes,
            "storage_growth_per_month": self.storage_growth,
            "storage_projection": {
                "months": PROJECTION_MONTHS,
                "bytes": round(self.storage_bytes + PROJECTION_MONTHS * self.storage_growth),
            },
            "queues": [q.as_json() for q in self.queues],
            "packages": self.packages.as_json(),
            "worst_late": [r.as_json() for r in self.worst_late],
        }


def _rate(on_time: int, late: int) -> float | None:
    return on_time / (on_time + late) if on_time + late else None


def _receipt() -> ColumnElement[datetime]:
    """When a record reached the platform: its first arrival, else its catalogue time."""
    return func.coalesce(col(Item.received_at), col(Item.created_at), type_=UTCDateTime())


def _in_period(period: Period, *, open_start: bool = False) -> list[ColumnElement[bool]]:
    """The conditions on :class:`Item` for a receipt in the period (``open_start``: or before it)."""
    found: list[ColumnElement[bool]] = []
    if period.since is not None and not open_start:
        found.append(_receipt() >= period.since)
    if period.until is not None:
        found.append(_receipt() < period.until)
    return found


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where ``condition`` holds, else 0: for SUM."""
    return case((condition, 1), else_=0)


def _total(value: Any) -> int:
    return int(value or 0)


def _month_starts(session: Session, viewer: Viewer, period: Period) -> list[date]:
    """The first days of the local months the period covers; an open side ends at the first (or
    last) receipt the viewer may see."""
    first, last = period.start, period.end
    if first is None or last is None:
        row = session.exec(
            select(func.min(_receipt()), func.max(_receipt())).where(visible_items(viewer), *_in_period(period))
        ).one()
        if row[0] is None:
            return []
        first = first or row[0].astimezone(period.zone).date()
        last = last or row[1].astimezone(period.zone).date()
    months: list[date] = []
    here = date(first.year, first.month, 1)
    while here <= last:
        months.append(here)
        if len(months) > MAX_MONTHS:
            raise InvalidValueError(f"a report spans at most {MAX_MONTHS} months")
        here = date(here.year + here.month // 12, here.month % 12 + 1, 1)
    return months


def _month_of(months: Sequence[date], zone: tzinfo) -> ColumnElement[str]:
    """The local month (YYYY-MM) of a record's receipt, among ``months`` (its receipt is in one)."""
    if not months:
        return literal("")
    keys = [f"{m:%Y-%m}" for m in months]
    ends = [_midnight(m, zone) for m in months[1:]]
    if not ends:
        return literal(keys[0])
    return case(
        *[(_receipt() < end, literal(key)) for end, key in zip(ends, keys, strict=False)], else_=literal(keys[-1])
    )


def _key_of(by: Grouping, month: ColumnElement[str]) -> Any:
    if by is Grouping.OFFICER:
        return col(Item.collector)
    if by is Grouping.DOCK:
        return col(Item.dock_id)
    if by is Grouping.CASE:
        return col(Item.case_number)
    if by is Grouping.TARGET:
        return col(Case.target)
    return month


def build_report(session: Session, *, viewer: Viewer, period: Period, by: Grouping | str = Grouping.OFFICER) -> Report:
    """The report's figures for ``period``, grouped ``by``, as ``viewer`` may see them (see the
    module's docstring). Raises :class:`ForbiddenError` unless the viewer is an admin, auditor or
    custodian, and :class:`InvalidValueError` for a grouping it does not know."""
    require_role(viewer, *REPORT_READERS, doing="read reports")
    try:
        grouping = Grouping(by)
    except ValueError:
        raise InvalidValueError(f"{by!r} is not a grouping ({', '.join(g.value for g in Grouping)})") from None
    dialect = session.get_bind().dialect.name
    months = _month_starts(session, viewer, period)
    month = _month_of(months, period.zone)
    scope = [visible_items(viewer), *_in_period(period)]

    withheld = withheld_items(viewer)
    shown = not_(withheld)
    late = and_(shown, col(Item.late).is_(True))
    on_time = and_(shown, col(Item.late).is_(False))
    key = _key_of(grouping, month)
    if grouping in FACT_GROUPINGS:
        key = case((withheld, null()), else_=key)
        key_withheld: Any = _flag(withheld)
    else:
        key_withheld = literal(0)
    duration = col(Item.media)["duration"].as_float()
    base_query = sql_select(
        col(Item.id).label("id"),
        col(Item.size).label("size"),
        col(Item.media_kind).label("kind"),
        _flag(withheld).label("withheld"),
        _flag(late).label("late"),
        _flag(on_time).label("on_time"),
        case((late, col(Item.working_days_late)), else_=null()).label("days_late"),
        *(_flag(and_(shown, col(getattr(Item, fact)).is_(None))).label(f"missing_{fact}") for fact in REQUIRED_FACTS),
        _flag(and_(shown, col(Item.deadline_provisional).is_(True))).label("provisional"),
        _flag(col(Item.classification) == Classification.UNCLASSIFIED.value).label("unclassified"),
        key.label("key"),
        key_withheld.label("key_withheld"),
        month.label("month"),
        duration.label("duration"),
    )
    if grouping is Grouping.TARGET:
        base_query = base_query.select_from(Item).outerjoin(Case, col(Case.number) == col(Item.case_number))
    base = base_query.where(*scope).subquery("base")
    b = base.c

    totals = session.execute(
        sql_select(
            func.count(),
            func.sum(b.late),
            func.sum(b.on_time),
            func.sum(b.withheld),
            func.sum(b.provisional),
            func.sum(b.unclassified),
            *(func.sum(getattr(b, f"missing_{fact}")) for fact in REQUIRED_FACTS),
        ).select_from(base)
    ).one()
    received, late_n, on_time_n, withheld_n, provisional_n, unclassified_n, *missing_n = (_total(v) for v in totals)

    group_rows = session.execute(
        sql_select(b.key, b.key_withheld, func.count(), func.sum(b.on_time), func.sum(b.late), func.max(b.days_late))
        .select_from(base)
        .group_by(b.key, b.key_withheld)
    ).all()
    groups = sorted(
        (
            Group(
                key=None if k is None else str(k),
                received=_total(n),
                on_time=_total(ok),
                late=_total(lt),
                working_days_late_max=None if worst is None else int(worst),
                withheld=bool(kw),
            )
            for k, kw, n, ok, lt, worst in group_rows
        ),
        key=lambda g: (g.withheld, g.key is None, g.key or ""),
    )

    late_days = {
        int(days): int(n)
        for days, n in session.exec(
            select(b.days_late, func.count()).select_from(base).where(b.days_late.is_not(None)).group_by(b.days_late)
        ).all()
    }
    by_kind = tuple(
        KindFigures(str(kind), int(n), _total(size), float(seconds or 0))
        for kind, n, size, seconds in session.exec(
            select(b.kind, func.count(), func.sum(b.size), func.sum(b.duration))
            .select_from(base)
            .group_by(b.kind)
            .order_by(b.kind)
        ).all()
    )

    def with_issue(codes: Sequence[str]) -> int:
        return _total(
            session.exec(
                select(func.count())
                .select_from(base)
                .where(b.id.in_(select(col(ItemIssue.item_id)).where(col(ItemIssue.code).in_(codes))))
            ).one()
        )

    damaged = with_issue(DAMAGE)
    fixity_problems = with_issue(STORE)
    derivatives_failed = _total(
        session.exec(
            select(func.count())
            .select_from(base)
            .where(
                b.id.in_(select(col(Derivative.item_id)).where(col(Derivative.status) == DerivativeStatus.FAILED.value))
            )
        ).one()
    )
    latest = select(b.id).where(b.days_late.is_not(None)).order_by(b.days_late.desc(), b.id).limit(WORST_LATE)
    worst_late = tuple(
        LateRecord(str(item_id), collector, case_number, int(days or 0))
        for item_id, collector, case_number, days in session.exec(
            select(col(Item.id), col(Item.collector), col(Item.case_number), col(Item.working_days_late))
            .where(col(Item.id).in_(latest))
            .order_by(col(Item.working_days_late).desc(), col(Item.id))
        ).all()
    )

    month_rows = {
        str(m): (int(n), _total(ok), _total(lt), _total(size))
        for m, n, ok, lt, size in session.execute(
            sql_select(b.month, func.count(), func.sum(b.on_time), func.sum(b.late), func.sum(b.size))
            .select_from(base)
            .group_by(b.month)
        ).all()
    }
    derived_rows = dict(
        session.exec(
            select(month.label("month"), func.sum(col(Derivative.size)))
            .select_from(Derivative)
            .join(Item, col(Item.id) == col(Derivative.item_id))
            .where(*scope, col(Derivative.status) == DerivativeStatus.VERIFIED.value)
            .group_by(month)
        ).all()
        if months
        else []
    )
    storage = _storage_before(session, viewer, period)
    month_figures = []
    for start in months:
        name = f"{start:%Y-%m}"
        n, ok, lt, size = month_rows.get(name, (0, 0, 0, 0))
        added = size + _total(derived_rows.get(name))
        storage += added
        month_figures.append(MonthFigures(name, n, ok, lt, added, storage))

    retrieved, by_user, by_class = _retrievals(session, viewer, period)
    return Report(
        period=period,
        by=grouping,
        received=received,
        on_time=on_time_n,
        late=late_n,
        withheld=withheld_n,
        missing=dict(zip(REQUIRED_FACTS, missing_n, strict=True)),
        damaged=damaged,
        derivatives_failed=derivatives_failed,
        fixity_problems=fixity_problems,
        worst_late=worst_late,
        provisional_pending=provisional_n,
        unclassified=unclassified_n,
        groups=tuple(groups),
        late_days=late_days,
        by_kind=by_kind,
        months=tuple(month_figures),
        storage_bytes=storage,
        retrievals=retrieved,
        retrievals_by_user=by_user,
        retrievals_by_classification=by_class,
        queues=review_queues(session, viewer=viewer),
        packages=_packages(session, viewer, period, dialect),
    )


def _storage_before(session: Session, viewer: Viewer, period: Period) -> int:
    """Bytes of the originals, and their verified derivatives, of the records the viewer may see
    received before the period."""
    if period.since is None:
        return 0
    before = [visible_items(viewer), _receipt() < period.since]
    originals = session.exec(select(func.sum(col(Item.size))).where(*before)).one()
    derived = session.exec(
        select(func.sum(col(Derivative.size)))
        .select_from(Derivative)
        .join(Item, col(Item.id) == col(Derivative.item_id))
        .where(*before, col(Derivative.status) == DerivativeStatus.VERIFIED.value)
    ).one()
    return _total(originals) + _total(derived)


def _retrievals(
    session: Session, viewer: Viewer, period: Period
) -> tuple[dict[str, int] | None, dict[str, int] | None, dict[str, int] | None]:
    """Retrieval events in the period, per action, per user and per class of what was retrieved
    (:func:`_retrievals_by_class`); (None, None, None) unless the viewer may read the retrieval history
    (admins and auditors)."""
    if not viewer.has(Role.ADMIN, Role.AUDITOR):
        return None, None, None
    conditions: list[ColumnElement[bool]] = [col(CustodyEvent.action).in_(RETRIEVAL_ACTIONS)]
    if period.since is not None:
        conditions.append(col(CustodyEvent.at) >= period.since)
    if period.until is not None:
        conditions.append(col(CustodyEvent.at) < period.until)
    per_action = session.exec(
        select(col(CustodyEvent.action), func.count()).where(*conditions).group_by(col(CustodyEvent.action))
    ).all()
    per_user = session.exec(
        select(col(CustodyEvent.actor), func.count()).where(*conditions).group_by(col(CustodyEvent.actor))
    ).all()
    return (
        {str(a): int(n) for a, n in sorted(per_action)},
        {str(u): int(n) for u, n in sorted(per_user)},
        _retrievals_by_class(session, conditions),
    )


RETRIEVED_OTHER = "other"  # a retrieval of no record, case or package (a report, the log)


def _retrievals_by_class(session: Session, conditions: Sequence[ColumnElement[bool]]) -> dict[str, int]:
    """The retrievals selected by ``conditions`` per class of what they retrieved: a record's class
    as it applies (its own or its case's, the stricter), a case's, a package's case's; ``other``
    for the rest. Counts only: no record or case is named."""
    target = col(CustodyEvent.target)
    item_class = (
        select(effective_class())
        .where(col(Item.id) == func.substr(target, len("item:") + 1))
        .limit(1)
        .scalar_subquery()
    )
    package_case = (
        select(col(Package.case_number))
        .where(col(Package.id) == func.substr(target, len("package:") + 1))
        .limit(1)
        .scalar_subquery()
    )
    retrieved = case(
        (target.startswith("item:"), item_class),
        (target.startswith("case:"), case_class(func.substr(target, len("case:") + 1))),
        (target.startswith("package:"), case_class(package_case)),
        else_=null(),
    )
    label = func.coalesce(retrieved, literal(RETRIEVED_OTHER)).label("retrieved")
    rows = session.execute(sql_select(label, func.count()).where(*conditions).group_by(label)).all()
    return {str(cls): int(n) for cls, n in sorted(rows)}


def _packages(session: Session, viewer: Viewer, period: Period, dialect: str) -> PackageFigures:
    conditions: list[ColumnElement[bool]] = [visible_packages(viewer, dialect)]
    if period.since is not None:
        conditions.append(col(Package.requested_at) >= period.since)
    if period.until is not None:
        conditions.append(col(Package.requested_at) < period.until)
    requested, verified, failed = session.exec(
        select(
            func.count(),
            func.sum(_flag(col(Package.status) == PackageStatus.VERIFIED.value)),
            func.sum(_flag(col(Package.status) == PackageStatus.FAILED.value)),
        ).where(*conditions)
    ).one()
    discs, discs_verified, size = session.exec(
        select(func.count(), func.sum(_flag(col(PackageDisc.verified).is_(True))), func.sum(col(PackageDisc.size)))
        .select_from(PackageDisc)
        .join(Package, col(Package.id) == col(PackageDisc.package_id))
        .where(*conditions)
    ).one()
    return PackageFigures(
        _total(requested), _total(verified), _total(failed), _total(discs), _total(discs_verified), _total(size)
    )


@dataclass(frozen=True)
class _Queue:
    name: str
    filters: ItemFilter
    codes: tuple[str, ...]  # the issues whose age is the queue's; none: the records' catalogue time


QUEUES: tuple[_Queue, ...] = (
    *(_Queue(f"missing.{fact}", ItemFilter(missing=fact), (issues.MISSING_FACT[fact],)) for fact in REQUIRED_FACTS),
    _Queue("late", ItemFilter(late=True), (issues.LATE,)),
    _Queue("damaged", ItemFilter(issues=DAMAGE), DAMAGE),
    _Queue("clock_drift", ItemFilter(issue=issues.CLOCK_DRIFT), (issues.CLOCK_DRIFT,)),
    _Queue("provisional", ItemFilter(issue=issues.DEADLINE_PROVISIONAL), (issues.DEADLINE_PROVISIONAL,)),
    _Queue("fixity", ItemFilter(issues=issues.STORE), issues.STORE),
    _Queue("unclassified", ItemFilter(classification=Classification.UNCLASSIFIED.value), ()),
)


def review_queues(session: Session, *, viewer: Viewer) -> tuple[QueueSize, ...]:
    """Each review queue's size now, counted as the queue pages count it (the same filters, the
    same viewer), and when its oldest entry was opened."""
    found = []
    for queue in QUEUES:
        size = count_items(session, viewer=viewer, filters=queue.filters)
        if queue.codes:
            oldest = session.exec(
                select(func.min(col(ItemIssue.created_at))).where(
                    col(ItemIssue.code).in_(queue.codes),
                    col(ItemIssue.item_id).in_(
                        select(col(Item.id)).where(visible_items(viewer), not_(withheld_items(viewer)))
                    ),
                )
            ).one()
        else:
            oldest = session.exec(
                select(func.min(col(Item.created_at))).where(
                    visible_items(viewer), col(Item.classification) == Classification.UNCLASSIFIED.value
                )
            ).one()
        found.append(QueueSize(queue.name, size, oldest if size else None))
    return tuple(found)


def record_report_view(session: Session, *, viewer: Viewer, report: Report, form: str, via: str, tool: str) -> None:
    """Record that ``viewer`` was shown (or exported) ``report`` as ``form`` (table, json, csv,
    html, pdf) through ``via`` (cli, web, api): a ``report-viewed`` custody event, since the report
    is a retrieval of the catalog's facts (ACCESS.md, supervised retrieval)."""
    details: dict[str, object] = {
        "via": via,
        "format": form,
        "by": report.by.value,
        "from": report.period.as_json()["from"],
        "to": report.period.as_json()["to"],
        "received": report.received,
    }
    if viewer.client:
        details["client"] = viewer.client
    with CustodyLog(session, viewer.name) as log:
        log.record("report-viewed", "report", details, tool=tool)
