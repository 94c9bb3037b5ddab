"""Cases and what is due: a case with its records, and the records uploaded after their deadline
grouped by officer and dock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from pipeline.catalog.models import Case, Item
from pipeline.catalog.queries.items import ItemSummary
from pipeline.catalog.types import iso
from pipeline.errors import NotFoundError


@dataclass(frozen=True)
class CaseDetail:
    """A case, its enforcement target and its records in order of capture."""

    number: str
    target: str | None
    items: tuple[ItemSummary, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "number": self.number,
            "target": self.target,
            "count": len(self.items),
            "items": [item.as_json() for item in self.items],
        }


def case_detail(session: Session, *, number: str) -> CaseDetail:
    """The case ``number`` with its records; :class:`NotFoundError` when there is no such case."""
    case = session.get(Case, number)
    if case is None:
        raise NotFoundError(f"no case {number!r}")
    members = session.exec(select(Item).where(Item.case_number == number).order_by(col(Item.captured_at))).all()
    return CaseDetail(case.number, case.target, tuple(ItemSummary.of(m) for m in members))


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


def overdue_groups(session: Session) -> list[OverdueGroup]:
    """The records uploaded after their deadline, grouped by officer and dock (in that order)."""
    late = session.exec(
        select(Item)
        .where(col(Item.late).is_(True))
        .order_by(col(Item.collector), col(Item.dock_id), col(Item.captured_at))
    ).all()
    groups: dict[tuple[str | None, str], list[OverdueItem]] = {}
    for found in late:
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
