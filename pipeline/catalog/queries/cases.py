"""Cases and what is due: a case with its records, and the records uploaded after their deadline
grouped by officer and dock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from pipeline.catalog.access import visible_cases, visible_items, visible_packages, withheld_cases, withheld_items
from pipeline.catalog.models import Case, Item, Package
from pipeline.catalog.people import CaseMember, UserAccount
from pipeline.catalog.queries.items import ItemSummary, visible
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.errors import NotFoundError


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


def overdue_groups(session: Session, *, viewer: Viewer) -> list[OverdueGroup]:
    """The records the viewer may see uploaded after their deadline, grouped by officer and dock (in
    that order). Records withheld from the viewer are left out: the grouping shows their facts."""
    late = session.exec(
        visible(viewer)
        .where(col(Item.late).is_(True), ~withheld_items(viewer))
        .order_by(col(Item.collector), col(Item.dock_id), col(Item.captured_at), col(Item.id))
    ).all()
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
    return [OverdueGroup(officer, dock, tuple(members)) for (officer, dock), members in groups.items()]
