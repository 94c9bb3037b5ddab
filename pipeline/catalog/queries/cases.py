"""Cases and what is due: a case with its records, and the records uploaded after their deadline
grouped by officer and dock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_
from sqlmodel import Session, col, select

from pipeline.catalog.access import visible_cases, visible_items, visible_packages, withheld_cases, withheld_items
from pipeline.catalog.models import Case, Item, Package
from pipeline.catalog.people import CaseMember, UserAccount
from pipeline.catalog.queries.items import MAX_PAGE, ItemSummary, visible
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, NotFoundError


@dataclass(frozen=True)
class CaseDetail:
    """A case, its enforcement target, its class and its records in order of capture, as a viewer
    may see them (a ``withheld`` case's target is not shown)."""

    number: str
    target: str | None
    items: tuple[ItemSummary, ...]
    classification: str = "none"
    withheld: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "target": self.target,
            "classification": self.classification,
            "withheld": self.withheld,
            "count": len(self.items),
            "items": [item.as_json() for item in self.items],
        }


def case_detail(session: Session, *, number: str, viewer: Viewer) -> CaseDetail:
    """The case ``number`` with the records of it the viewer may know exist; :class:`NotFoundError`
    when there is no such case the viewer may know of (one they are not cleared for or, for a case
    handler, not assigned to)."""
    found = session.exec(
        select(Case, withheld_cases(viewer).label("withheld")).where(Case.number == number, visible_cases(viewer))
    ).first()
    if found is None:
        raise NotFoundError(f"no case {number!r}")
    case, withheld = found
    members = session.exec(
        visible(viewer).where(Item.case_number == number).order_by(col(Item.captured_at), col(Item.id))
    ).all()
    return CaseDetail(
        case.number,
        None if withheld else case.target,
        tuple(ItemSummary.of(m, classification=str(cls), withheld=bool(held)) for m, cls, held in members),
        classification=case.classification,
        withheld=bool(withheld),
    )


@dataclass(frozen=True)
class CaseSummary:
    """A case as a list shows it: its target (None when withheld), class, and how many of its
    records and packages the viewer may know exist."""

    number: str
    target: str | None
    classification: str
    withheld: bool
    records: int
    packages: int

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "target": self.target,
            "classification": self.classification,
            "withheld": self.withheld,
            "records": self.records,
            "packages": self.packages,
        }


def list_cases(session: Session, *, viewer: Viewer) -> list[CaseSummary]:
    """The cases the viewer may know of, by number, each with the number of its records and of its
    disc packages the viewer may know exist."""
    records = dict(
        session.exec(
            select(col(Item.case_number), func.count())
            .where(visible_items(viewer), col(Item.case_number).is_not(None))
            .group_by(col(Item.case_number))
        ).all()
    )
    dialect = session.get_bind().dialect.name
    packages = dict(
        session.exec(
            select(col(Package.case_number), func.count())
            .where(visible_packages(viewer, dialect))
            .group_by(col(Package.case_number))
        ).all()
    )
    rows = session.exec(
        select(Case, withheld_cases(viewer).label("withheld")).where(visible_cases(viewer)).order_by(col(Case.number))
    ).all()
    return [
        CaseSummary(
            number=case.number,
            target=None if withheld else case.target,
            classification=case.classification,
            withheld=bool(withheld),
            records=int(records.get(case.number, 0)),
            packages=int(packages.get(case.number, 0)),
        )
        for case, withheld in rows
    ]


def related_cases(session: Session, *, number: str, viewer: Viewer) -> list[CaseDetail]:
    """The other cases the viewer may know of with the same enforcement target as case ``number``
    (none when its target is withheld from the viewer or not set), each with its records."""
    here = case_detail(session, number=number, viewer=viewer)
    if here.target is None or here.withheld:
        return []
    others = session.exec(
        select(col(Case.number))
        .where(Case.target == here.target, Case.number != number, visible_cases(viewer), ~withheld_cases(viewer))
        .order_by(col(Case.number))
    ).all()
    return [case_detail(session, number=other, viewer=viewer) for other in others]


def case_handlers(session: Session, *, number: str, viewer: Viewer) -> list[str]:
    """The names of the case handlers assigned to case ``number`` (one the viewer may know of)."""
    case_detail(session, number=number, viewer=viewer)
    return list(
        session.exec(
            select(col(UserAccount.name))
            .join(CaseMember, col(CaseMember.user_id) == col(UserAccount.id))
            .where(CaseMember.case_number == number)
            .order_by(col(UserAccount.name))
        ).all()
    )


@dataclass(frozen=True)
class OverdueItem:
    """A record uploaded after its deadline, and by how many working days."""

    id: str
    original_name: str
    captured_at: datetime | None
    deadline: datetime | None
    received_at: datetime | None
    working_days_late: int | None
    provisional: bool

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "original_name": self.original_name,
            "captured_at": iso(self.captured_at),
            "deadline": iso(self.deadline),
            "received_at": iso(self.received_at),
            "working_days_late": self.working_days_late,
            "provisional": self.provisional,
        }


@dataclass(frozen=True)
class OverdueGroup:
    """The late records one officer brought to one dock."""

    officer: str | None
    dock: str
    items: tuple[OverdueItem, ...]

    @property
    def working_days_late(self) -> int:
        return sum(item.working_days_late or 0 for item in self.items)

    def as_json(self) -> dict[str, object]:
        return {
            "officer": self.officer,
            "dock": self.dock,
            "count": len(self.items),
            "working_days_late": self.working_days_late,
            "items": [item.as_json() for item in self.items],
        }


OVERDUE_PAGE = 200  # late records on one page of the overdue report unless asked otherwise


@dataclass(frozen=True)
class OverduePage:
    """A page of the overdue report: its groups (a group may go on on the next page) and the
    ``after`` of the next page (the ID of this page's last record), None on the last one."""

    groups: tuple[OverdueGroup, ...]
    next_after: str | None

    def as_json(self) -> dict[str, object]:
        return {"groups": [group.as_json() for group in self.groups], "next_after": self.next_after}


def overdue_groups(session: Session, *, viewer: Viewer) -> list[OverdueGroup]:
    """The records the viewer may see uploaded after their deadline, grouped by officer and dock (in
    that order), all of them (the command line's report; a page reads :func:`overdue_page`).
    Records withheld from the viewer are left out: the grouping shows their facts."""
    return list(_overdue(session, viewer, None, None).groups)


def overdue_page(
    session: Session, *, viewer: Viewer, limit: int = OVERDUE_PAGE, after: str | None = None
) -> OverduePage:
    """At most ``limit`` records of :func:`overdue_groups`, those after the record ``after`` (the
    :attr:`OverduePage.next_after` of the page before) in the report's order: officer, dock, capture
    time and ID, read along the late records' index (migration 0008) from there, so every page
    costs about the same. :class:`InvalidValueError` for a limit outside 1..:data:`MAX_PAGE` and for
    an ``after`` that is no late record the viewer may see."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValueError(f"limit {limit} is not between 1 and {MAX_PAGE}")
    return _overdue(session, viewer, limit, after)


def _late_conditions(viewer: Viewer) -> tuple[ColumnElement[bool], ...]:
    """The conditions on :class:`Item` for the late records the viewer may see and not withheld."""
    return (visible_items(viewer), col(Item.late).is_(True), ~withheld_items(viewer))


def _late(viewer: Viewer) -> Any:
    """``select(Item, …)`` of the late records the viewer may see and not withheld."""
    return visible(viewer).where(col(Item.late).is_(True), ~withheld_items(viewer))


def _overdue(session: Session, viewer: Viewer, limit: int | None, after: str | None) -> OverduePage:
    nulls_first = session.get_bind().dialect.name != "postgresql"  # where each orders NULL first
    keys = (col(Item.collector), col(Item.dock_id), col(Item.captured_at), col(Item.id))
    query = _late(viewer)
    if after is not None:
        # The record's own row tested by the report's conditions (not its ID looked for among every
        # late record's, which SQLite reads all of first).
        place = session.exec(select(*keys).where(col(Item.id) == after, *_late_conditions(viewer))).first()
        if place is None:
            raise InvalidValueError(f"{after[:40]!r} is not a late record: ask for the first page again")
        query = query.where(_past(list(zip(keys, tuple(place), strict=True)), nulls_first=nulls_first))
    query = query.order_by(*keys)
    if limit is not None:
        query = query.limit(limit + 1)
    late = session.exec(query).all()
    more = limit is not None and len(late) > limit
    late = late[:limit] if limit is not None else late
    groups: dict[tuple[str | None, str], list[OverdueItem]] = {}
    for found, _, _ in late:
        groups.setdefault((found.collector, found.dock_id), []).append(
            OverdueItem(
                id=found.id,
                original_name=found.original_name,
                captured_at=found.captured_at,
                deadline=found.deadline,
                received_at=found.received_at,
                working_days_late=found.working_days_late,
                provisional=found.deadline_provisional,
            )
        )
    return OverduePage(
        tuple(OverdueGroup(officer, dock, tuple(members)) for (officer, dock), members in groups.items()),
        late[-1][0].id if more else None,
    )


def _past(keys: list[tuple[Any, Any]], *, nulls_first: bool) -> ColumnElement[bool]:
    """The condition for the rows after the place ``keys`` gives ((column, its value) in the order
    of the listing), NULL ordered first or last as the database orders it ascending."""

    def same(column: Any, value: Any) -> ColumnElement[bool]:
        return column.is_(None) if value is None else column == value

    def later(column: Any, value: Any) -> ColumnElement[bool]:
        if value is None:
            return column.is_not(None) if nulls_first else false()
        return column > value if nulls_first else or_(column > value, column.is_(None))

    ways = [and_(*(same(c, v) for c, v in keys[:k]), later(*keys[k])) for k in range(len(keys))]
    condition = or_(*ways)
    first, value = keys[0]
    if value is not None and nulls_first:
        condition = and_(first >= value, condition)  # where along the index to start
    elif value is None and not nulls_first:
        condition = and_(first.is_(None), condition)
    return condition
