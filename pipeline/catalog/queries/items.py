"""Finding items: one by the name a person gives, or a listing narrowed by filters. Every read is
narrowed to what the viewer may know exists (:mod:`pipeline.catalog.access`) in its SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlmodel import Session, col, func, or_, select

from pipeline.catalog.access import effective_class, visible_cases, visible_items, withheld_cases, withheld_items
from pipeline.catalog.models import REQUIRED_FACTS, Case, Item, ItemIssue, StageRun
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, NotFoundError, WithheldError

MIN_PREFIX = 6  # characters of an ID or SHA-256 that name an item


class AmbiguousError(NotFoundError):
    """The name given matches more than one entry."""


@dataclass(frozen=True)
class Located:
    """An item the viewer may know exists, its class as it applies, and whether it is withheld."""

    item: Item
    classification: str
    withheld: bool


def visible(viewer: Viewer) -> Any:
    """``select(Item, class, withheld)`` narrowed to the items the viewer may know exist."""
    return select(Item, effective_class().label("effective_class"), withheld_items(viewer).label("withheld")).where(
        visible_items(viewer)
    )


def locate_item(session: Session, ident: str, *, viewer: Viewer) -> Located:
    """An item the viewer may know exists, by ID or SHA-256, or a unique prefix (6 characters or
    more) of either, with its class and whether it is withheld from the viewer.

    Raises :class:`NotFoundError` when none the viewer may see matches and :class:`AmbiguousError`
    when several do.
    """
    matches = (
        session.exec(
            visible(viewer)
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
    found, classification, withheld = matches[0]
    return Located(found, str(classification), bool(withheld))


def find_item(session: Session, ident: str, *, viewer: Viewer) -> Item:
    """An item the viewer may see in full, named as :func:`locate_item` reads it.

    Raises :class:`NotFoundError` (or :class:`AmbiguousError`) when ``ident`` names no single item
    the viewer may know exists, and :class:`WithheldError` when it is withheld from them.
    """
    located = locate_item(session, ident, viewer=viewer)
    if located.withheld:
        raise WithheldError(located.item.id)
    return located.item


def find_summary(session: Session, ident: str, *, viewer: Viewer) -> ItemSummary:
    """The listing of the item ``ident`` names (see :func:`locate_item`), withheld or not."""
    located = locate_item(session, ident, viewer=viewer)
    return ItemSummary.of(located.item, classification=located.classification, withheld=located.withheld)


def items_in_stage(session: Session, stage: str, statuses: list[str], *, viewer: Viewer) -> list[str]:
    """The IDs of the items the viewer may see whose ``stage`` is in one of ``statuses``, in ID order."""
    query = select(StageRun.item_id).where(
        StageRun.stage == stage,
        col(StageRun.status).in_(statuses),
        col(StageRun.item_id).in_(select(Item.id).where(visible_items(viewer))),
    )
    return list(session.exec(query.order_by(col(StageRun.item_id))).all())


def count_items(session: Session, *, viewer: Viewer) -> int:
    """How many items the viewer may know exist."""
    return int(session.exec(select(func.count()).select_from(Item).where(visible_items(viewer))).one())


@dataclass(frozen=True)
class ItemSummary:
    """The fields of an item every listing shows. ``classification`` is its class as it applies
    (its own or its case's, whichever is stricter); a ``withheld`` item is shown without its name
    and facts."""

    id: str
    sha256: str
    size: int
    original_name: str | None
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
    classification: str
    withheld: bool = False

    @classmethod
    def of(cls, item: Item, *, classification: str, withheld: bool = False) -> ItemSummary:
        shown = not withheld
        return cls(
            id=item.id,
            sha256=item.sha256,
            size=item.size,
            original_name=item.original_name if shown else None,
            dock=item.dock_id,
            status=item.status,
            media_kind=item.media_kind,
            digests=item.digests,
            created_at=item.created_at,
            fixity=item.fixity_status,
            case_number=item.case_number if shown else None,
            captured_at=item.captured_at if shown else None,
            collector=item.collector if shown else None,
            late=item.late if shown else None,
            working_days_late=item.working_days_late if shown else None,
            classification=classification,
            withheld=withheld,
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
            "classification": self.classification,
            "withheld": self.withheld,
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

    @property
    def reads_facts(self) -> bool:
        """Whether the filters select by an item's facts, issues or case (not only where it arrived,
        its status or kind)."""
        return bool(
            self.case_number
            or self.target
            or self.officer
            or self.late
            or self.missing
            or self.issue
            or self.captured_from is not None
            or self.captured_to is not None
        )


def list_items(session: Session, *, viewer: Viewer, filters: ItemFilter | None = None) -> list[ItemSummary]:
    """The catalogued items the viewer may know exist that the filters select, oldest first. A
    filter on anything but the dock, status or kind leaves out the items withheld from the viewer,
    whose facts they may not learn by filtering."""
    filters = filters or ItemFilter()
    query = visible(viewer).order_by(col(Item.created_at), col(Item.id))
    if filters.reads_facts:
        query = query.where(~withheld_items(viewer))
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
        cases = select(Case.number).where(Case.target == filters.target, visible_cases(viewer), ~withheld_cases(viewer))
        query = query.where(col(Item.case_number).in_(cases))
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
    return [
        ItemSummary.of(found, classification=str(classification), withheld=bool(withheld))
        for found, classification, withheld in session.exec(query)
    ]


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
