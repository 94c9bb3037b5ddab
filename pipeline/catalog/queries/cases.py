"""Cases and what is due: a case with its records, and the records uploaded after their deadline
grouped by officer and dock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from pipeline.catalog.access import visible_cases, withheld_cases, withheld_items
from pipeline.catalog.models import Case, Item
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
