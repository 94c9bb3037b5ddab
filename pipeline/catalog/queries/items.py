"""Finding items: one by the name a person gives, or a listing narrowed by filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sqlmodel import Session, col, func, or_, select

from pipeline.catalog.models import REQUIRED_FACTS, Case, Item, ItemIssue, StageRun
from pipeline.catalog.types import iso
from pipeline.errors import InvalidValueError, NotFoundError

MIN_PREFIX = 6  # characters of an ID or SHA-256 that name an item


class AmbiguousError(NotFoundError):
    """The name given matches more than one entry."""


def find_item(session: Session, ident: str) -> Item:
    """An item by ID or SHA-256, or a unique prefix (6 characters or more) of either.

    Raises :class:`NotFoundError` when none matches and :class:`AmbiguousError` when several do.
    """
    matches = (
        session.exec(
            select(Item)
            .where(or_(col(Item.id).startswith(ident.upper()), col(Item.sha256).startswith(ident.lower())))
            .limit(2)
        ).all()
        if len(ident) >= MIN_PREFIX
        else []
    )
    if not matches:
        raise NotFoundError(f"no item matches {ident!r}")
    if len(matches) > 1:
        raise AmbiguousError(f"more than one item matches {ident!r}")
    return matches[0]


def items_in_stage(session: Session, stage: str, statuses: list[str]) -> list[str]:
    """The IDs of the items whose ``stage`` is in one of ``statuses``, in ID order."""
    query = select(StageRun.item_id).where(StageRun.stage == stage, col(StageRun.status).in_(statuses))
    return list(session.exec(query.order_by(col(StageRun.item_id))).all())


def count_items(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Item)).one())


@dataclass(frozen=True)
class ItemSummary:
    """The fields of an item every listing shows."""

    id: str
    sha256: str
    size: int
    original_name: str
    dock: str
    status: str
    media_kind: str
    digests: dict[str, str]
    created_at: datetime
    fixity: str | None
    case_number: str | None
    captured_at: datetime | None
    collector: str | None
    late: bool | None
    working_days_late: int | None

    @classmethod
    def of(cls, item: Item) -> ItemSummary:
        return cls(
            id=item.id,
            sha256=item.sha256,
            size=item.size,
            original_name=item.original_name,
            dock=item.dock_id,
            status=item.status,
            media_kind=item.media_kind,
            digests=item.digests,
            created_at=item.created_at,
            fixity=item.fixity_status,
            case_number=item.case_number,
            captured_at=item.captured_at,
            collector=item.collector,
            late=item.late,
            working_days_late=item.working_days_late,
        )

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "size": self.size,
            "original_name": self.original_name,
            "dock": self.dock,
            "status": self.status,
            "media_kind": self.media_kind,
            "digests": self.digests,
            "created_at": self.created_at.isoformat(),
            "fixity": self.fixity,
            "case_number": self.case_number,
            "captured_at": iso(self.captured_at),
            "collector": self.collector,
            "late": self.late,
            "working_days_late": self.working_days_late,
        }


@dataclass(frozen=True, kw_only=True)
class ItemFilter:
    """What a listing of items is narrowed to; the filters given combine, empty ones are ignored.

    ``captured_from`` is inclusive, ``captured_to`` exclusive; both are timezone-aware (see
    :func:`local_day`). ``missing`` names one of the required facts. ``limit`` None (or 0) lists all.
    """

    dock: str | None = None
    case_number: str | None = None
    target: str | None = None
    officer: str | None = None
    late: bool = False
    missing: str | None = None
    issue: str | None = None
    captured_from: datetime | None = None
    captured_to: datetime | None = None
    status: str | None = None
    media_kind: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.missing and self.missing not in REQUIRED_FACTS:
            raise InvalidValueError(f"{self.missing!r} is not one of the required facts ({', '.join(REQUIRED_FACTS)})")
        for name, moment in (("captured_from", self.captured_from), ("captured_to", self.captured_to)):
            if moment is not None and moment.utcoffset() is None:
                raise InvalidValueError(f"{name} {moment.isoformat()} has no time zone")
        if self.limit is not None and self.limit < 0:
            raise InvalidValueError(f"limit {self.limit} is below 0")


def list_items(session: Session, *, filters: ItemFilter | None = None) -> list[ItemSummary]:
    """The catalogued items the filters select, oldest first."""
    filters = filters or ItemFilter()
    query = select(Item).order_by(col(Item.created_at), col(Item.id))
    for column, value in (
        (Item.dock_id, filters.dock),
        (Item.case_number, filters.case_number),
        (Item.collector, filters.officer),
        (Item.status, filters.status),
        (Item.media_kind, filters.media_kind),
    ):
        if value:
            query = query.where(column == value)
    if filters.target:
        query = query.where(col(Item.case_number).in_(select(Case.number).where(Case.target == filters.target)))
    if filters.late:
        query = query.where(col(Item.late).is_(True))
    if filters.missing:
        query = query.where(col(getattr(Item, filters.missing)).is_(None))
    if filters.issue:
        query = query.where(col(Item.id).in_(select(ItemIssue.item_id).where(ItemIssue.code == filters.issue)))
    if filters.captured_from is not None:
        query = query.where(col(Item.captured_at) >= filters.captured_from)
    if filters.captured_to is not None:
        query = query.where(col(Item.captured_at) < filters.captured_to)
    if filters.limit:
        query = query.limit(filters.limit)
    return [ItemSummary.of(found) for found in session.exec(query)]


def local_day(value: str, zone: tzinfo, *, end: bool) -> datetime:
    """A date (YYYY-MM-DD, in ``zone``) or time (ISO 8601; without an offset, in ``zone``) as UTC,
    for :class:`ItemFilter`. With ``end`` a date means the start of the next day, so a range
    "to" that date includes all of it."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidValueError(f"{value!r} is not a date (YYYY-MM-DD) or ISO time") from exc
    if len(value) == 10 and end:
        moment += timedelta(days=1)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
