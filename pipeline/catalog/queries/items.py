"""Finding items: one by the name a person gives, or a listing narrowed by filters. Every read is
narrowed to what the viewer may know exists (:mod:`pipeline.catalog.access`) in its SQL."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from string import hexdigits
from typing import Any

from sqlalchemy import and_, any_, bindparam, literal, literal_column, table, tuple_
from sqlmodel import Session, col, func, or_, select

from pipeline.catalog.access import (
    effective_class,
    visible_cases,
    visible_items,
    withheld_cases,
    withheld_items,
)
from pipeline.catalog.models import REQUIRED_FACTS, Case, Item, ItemIssue, StageRun
from pipeline.catalog.people import Classification
from pipeline.catalog.types import UTCDateTime, iso
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, NotFoundError, WithheldError

MIN_PREFIX = 6  # characters of an ID or SHA-256 that name an item
ID_LENGTH = 26  # characters of an item's ID (a ULID)
SHA256_LENGTH = 64
MAX_PAGE = 500  # items on one page of :func:`page_items` at most
MAX_TEXT = 500  # characters of a filter's text at most
TRIGRAM = 3  # characters of a search text at least for the trigram index to find it
COUNT_LIMIT = 1000  # items a page's count (and a review queue's size) reads at most
SHORT_TEXT_WINDOW = 5_000  # newest items a search text too short for the index is looked for in
# The text the PostgreSQL trigram index ``ix_item_trgm_search`` holds (migration 0009): written
# exactly as the index is, so the planner matches it.
SEARCH_DOCUMENT = (
    "(coalesce(item.original_name, '') || ' ' || coalesce(item.case_number, '') || ' '"
    " || coalesce(item.captured_place, '') || ' ' || coalesce(item.collector, '') || ' '"
    " || coalesce(item.proof_object, ''))"
)


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
    if "\x00" in ident:  # no name holds it, and PostgreSQL refuses it in a text value
        raise NotFoundError(f"no item matches {ident!r}")
    matches = session.exec(visible(viewer).where(_named_by(ident)).limit(2)).all() if len(ident) >= MIN_PREFIX else []
    if not matches:
        raise NotFoundError(f"no item matches {ident!r}")
    if len(matches) > 1:
        raise AmbiguousError(f"more than one item matches {ident!r}")
    found, classification, withheld = matches[0]
    return Located(found, str(classification), bool(withheld))


def _named_by(ident: str) -> Any:
    """The condition on :class:`Item` for the items whose ID or SHA-256 starts with ``ident``.

    A whole SHA-256, or a whole ID that no SHA-256 could start with (it holds a letter past F), can
    only be the one item it names: looked up by its index, not by reading every ID and digest."""
    if len(ident) == SHA256_LENGTH:
        return col(Item.sha256) == ident.lower()
    if len(ident) == ID_LENGTH and not set(ident.lower()) <= set(hexdigits):
        return col(Item.id) == ident.upper()
    return or_(col(Item.id).startswith(ident.upper()), col(Item.sha256).startswith(ident.lower()))


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


def count_items(
    session: Session, *, viewer: Viewer, filters: ItemFilter | None = None, at_most: int | None = None
) -> int:
    """How many items the viewer may know exist (that the filters select, see :func:`list_items`).

    With ``at_most`` no more than ``at_most + 1`` items are read: a result above ``at_most`` says
    "more than ``at_most``" (what a page shows of a large listing), however many there are."""
    if at_most is not None and at_most < 0:
        raise InvalidValueError(f"at_most {at_most} is below 0")
    query = select(col(Item.id)).where(visible_items(viewer))
    if filters is not None:
        query = _filtered(query, viewer, filters, session)
    if at_most is not None:
        query = query.limit(at_most + 1)
    return int(session.exec(select(func.count()).select_from(query.subquery())).one())


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
    :func:`local_day`). ``missing`` names one of the required facts; ``issues`` selects the items
    with any of those issue codes (besides ``issue``); ``classification`` is the class as it applies
    (the item's own or its case's, whichever is stricter); ``text`` is found, whatever its case, in
    the original name, the case number, place, collector, proof object or the case's target; a
    text shorter than 3 characters (which the text indexes cannot find) is looked for only in the
    newest :data:`SHORT_TEXT_WINDOW` items the other filters select, and any taken in at the same
    instant as the oldest of them (see :attr:`short_text`).
    ``limit`` None (or 0) lists all.
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
    issues: tuple[str, ...] = ()
    classification: str | None = None
    text: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        given = [self.dock, self.case_number, self.target, self.officer, self.missing, self.issue, self.status]
        given += [self.media_kind, self.classification, self.text, *self.issues]
        for value in given:
            if value and ("\x00" in value or len(value) > MAX_TEXT):
                raise InvalidValueError(f"a filter value of {len(value)} characters, or with a NUL, cannot be used")
        if self.classification and self.classification not in {c.value for c in Classification}:
            raise InvalidValueError(
                f"{self.classification!r} is not a class ({', '.join(c.value for c in Classification)})"
            )
        if self.missing and self.missing not in REQUIRED_FACTS:
            raise InvalidValueError(f"{self.missing!r} is not one of the required facts ({', '.join(REQUIRED_FACTS)})")
        for name, moment in (("captured_from", self.captured_from), ("captured_to", self.captured_to)):
            if moment is not None and moment.utcoffset() is None:
                raise InvalidValueError(f"{name} {moment.isoformat()} has no time zone")
        if self.limit is not None and self.limit < 0:
            raise InvalidValueError(f"limit {self.limit} is below 0")

    @property
    def short_text(self) -> bool:
        """Whether the text is too short for the text indexes (under 3 characters), so it is looked
        for only in the newest :data:`SHORT_TEXT_WINDOW` items the other filters select: a bounded
        read whatever the size of the catalog. A longer text is looked for in every item."""
        return bool(self.text) and len(self.text or "") < TRIGRAM

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
            or self.issues
            or self.text
            or self.captured_from is not None
            or self.captured_to is not None
        )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _filtered(query: Any, viewer: Viewer, filters: ItemFilter, session: Session, *, common: bool = False) -> Any:
    """``query`` (of :class:`Item`) narrowed by ``filters``, as :func:`list_items` reads them, on
    the session's database (the free-text search uses its index; a short text's window is read
    first).

    ``common`` says the filters select many items (more than :data:`COUNT_LIMIT`): a page of them
    in listing order is then found soonest by reading that order's index and testing each item,
    so on SQLite the issues and the text are tested row by row there, not looked up first (which
    reads every item they select, to sort them all for one page). The same items are selected."""
    dialect = _dialect(session)
    by_row = common and dialect == "sqlite"
    # "+item.id" is the same value, but no index may answer for it: SQLite keeps to the order's.
    member = literal_column("+item.id") if by_row else col(Item.id)
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
        query = query.where(member.in_(select(ItemIssue.item_id).where(ItemIssue.code == filters.issue)))
    if filters.issues:
        query = query.where(member.in_(select(ItemIssue.item_id).where(col(ItemIssue.code).in_(filters.issues))))
    if filters.captured_from is not None:
        query = query.where(col(Item.captured_at) >= filters.captured_from)
    if filters.captured_to is not None:
        query = query.where(col(Item.captured_at) < filters.captured_to)
    if filters.classification == Classification.UNCLASSIFIED:
        # The least strict class applies only when the item's own and its case's are both it: it
        # names no case, or none of another class (those few cases read once, not one per item).
        classified = select(col(Case.number)).where(col(Case.classification) != Classification.UNCLASSIFIED.value)
        query = query.where(
            col(Item.classification) == Classification.UNCLASSIFIED.value,
            or_(col(Item.case_number).is_(None), col(Item.case_number).not_in(classified)),
        )
    elif filters.classification:
        query = query.where(effective_class() == filters.classification)
    if filters.text:
        query = query.where(_text_found(filters.text, viewer, dialect, by_row=by_row))
        if filters.short_text:
            # Where the newest items the other filters select begin, read backwards along
            # (created_at, id) first: then a range of that index, which both databases start from.
            others = replace(filters, text=None, limit=None)
            newest = _filtered(select(col(Item.created_at)).where(visible_items(viewer)), viewer, others, session)
            oldest = session.exec(
                newest.order_by(col(Item.created_at).desc(), col(Item.id).desc()).offset(SHORT_TEXT_WINDOW - 1).limit(1)
            ).first()
            if oldest is not None:
                query = query.where(col(Item.created_at) >= oldest)
    return query


def _text_found(text: str, viewer: Viewer, dialect: str, *, by_row: bool = False) -> Any:
    """The condition on :class:`Item` for ``text`` found, whatever its case, in the original name,
    case number, place, collector or proof object, or in the target of its case (one the viewer may
    know of, not withheld).

    On SQLite a text of 3 characters or more is looked up in the trigram index ``item_search``
    first (migration 0008), and only the items found there are read. On PostgreSQL it is looked up
    in the pg_trgm index over the five columns joined (:data:`SEARCH_DOCUMENT`, migration 0009)
    when the extension was there for the migration. Either way the rows are matched by the same
    conditions, column by column, so what is found does not depend on the index. Shorter texts,
    which no trigram index can find, are bounded by :func:`_filtered` instead. With ``by_row``
    (a common text on SQLite, see :func:`_filtered`) the rows are matched without the index.
    """
    pattern = "%" + like_escaped(text) + "%"
    found = or_(
        *(
            col(column).ilike(pattern, escape="\\")
            for column in (Item.original_name, Item.case_number, Item.captured_place, Item.collector, Item.proof_object)
        )
    )
    cases = select(col(Case.number)).where(
        col(Case.target).ilike(pattern, escape="\\"), visible_cases(viewer), ~withheld_cases(viewer)
    )
    if dialect == "postgresql":
        # ANY(ARRAY(…)): read once, and an index condition, which IN (…) under an OR is not.
        in_cases = col(Item.case_number) == any_(func.array(cases.scalar_subquery()))
        if len(text) < TRIGRAM:
            return or_(found, in_cases)
        # The joined text holds the pattern whenever one of the columns does: a condition the
        # trigram index answers, the columns then tested one by one.
        document = literal_column(SEARCH_DOCUMENT).ilike(pattern, escape="\\")
        return or_(and_(document, found), in_cases)
    matched = or_(found, col(Item.case_number).in_(cases))
    if dialect == "sqlite" and len(text) >= TRIGRAM and not by_row:
        # The items the trigram index finds, and those of the cases found, are the only ones read.
        phrase = '"' + text.replace('"', '""') + '"'
        indexed: Any = (
            select(literal_column("rowid"))
            .select_from(table("item_search"))
            .where(literal_column("item_search").op("MATCH")(bindparam("search", phrase)))
        )
        of_cases: Any = select(literal_column("rowid")).select_from(Item).where(col(Item.case_number).in_(cases))
        return and_(literal_column("item.rowid").in_(indexed.union_all(of_cases)), matched)
    return matched


def like_escaped(text: str) -> str:
    """``text`` with the wildcards of SQL ``LIKE`` (and the escape character) taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_items(session: Session, *, viewer: Viewer, filters: ItemFilter | None = None) -> list[ItemSummary]:
    """The catalogued items the viewer may know exist that the filters select, oldest first. A
    filter on anything but the dock, status, kind or class leaves out the items withheld from the
    viewer, whose facts they may not learn by filtering."""
    filters = filters or ItemFilter()
    query = _filtered(visible(viewer), viewer, filters, session).order_by(col(Item.created_at), col(Item.id))
    if filters.limit:
        query = query.limit(filters.limit)
    return [
        ItemSummary.of(found, classification=str(classification), withheld=bool(withheld))
        for found, classification, withheld in session.exec(query)
    ]


@dataclass(frozen=True)
class Cursor:
    """A place in the listing ordered by (``created_at``, ``id``): the items after it, or with
    ``backward`` those before it. Given to clients as an opaque string (:meth:`encode`)."""

    created_at: datetime
    id: str
    backward: bool = False

    @classmethod
    def after(cls, summary: ItemSummary) -> Cursor:
        return cls(summary.created_at, summary.id)

    @classmethod
    def before(cls, summary: ItemSummary) -> Cursor:
        return cls(summary.created_at, summary.id, backward=True)

    def encode(self) -> str:
        text = f"{'b' if self.backward else 'a'}|{self.created_at.astimezone(UTC).isoformat()}|{self.id}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """The cursor ``token`` encodes; :class:`InvalidValueError` for anything else."""
        try:
            if len(token) > 200:
                raise ValueError("too long")
            text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, moment, ident = text.split("|")
            created_at = datetime.fromisoformat(moment)
            if direction not in ("a", "b") or created_at.utcoffset() is None:
                raise ValueError("not a cursor")
            if not ident or len(ident) > 26 or not ident.isalnum() or not ident.isascii():
                raise ValueError("not an item ID")
        except (ValueError, binascii.Error, UnicodeError) as exc:
            raise InvalidValueError("the cursor cannot be read: ask for the first page again") from exc
        return cls(created_at.astimezone(UTC), ident, backward=direction == "b")


@dataclass(frozen=True)
class ItemPage:
    """One page of a listing: its items (oldest first), how many the filters select in all, and
    the cursors of the pages after and before it (None at either end).

    ``count`` is exact up to :data:`COUNT_LIMIT`; beyond it ``count_exact`` is False and ``count``
    is :data:`COUNT_LIMIT` ("more than 1000"), so a page costs the same in any catalog. ``window``
    is the number of newest items a short text was looked for in (None: all were)."""

    items: tuple[ItemSummary, ...]
    count: int
    next: Cursor | None
    previous: Cursor | None
    count_exact: bool = True
    window: int | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "items": [found.as_json() for found in self.items],
            "count": self.count,
            "count_exact": self.count_exact,
            "searched_newest": self.window,
            "next": self.next.encode() if self.next else None,
        }


def page_items(
    session: Session,
    *,
    viewer: Viewer,
    filters: ItemFilter | None = None,
    cursor: Cursor | None = None,
    limit: int = 50,
) -> ItemPage:
    """A page of :func:`list_items`: at most ``limit`` items after (or, for a backward cursor,
    before) ``cursor``, in (``created_at``, ``id``) order, with the count of all the filters select
    for this viewer (exact up to :data:`COUNT_LIMIT`, see :class:`ItemPage`). ``filters.limit`` is
    not read. :class:`InvalidValueError` for a limit outside 1..:data:`MAX_PAGE`."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidValueError(f"limit {limit} is not between 1 and {MAX_PAGE}")
    filters = filters or ItemFilter()
    count = count_items(session, viewer=viewer, filters=filters, at_most=COUNT_LIMIT)
    query = _filtered(visible(viewer), viewer, filters, session, common=count > COUNT_LIMIT)
    created, ident = col(Item.created_at), col(Item.id)
    backward = cursor is not None and cursor.backward
    if cursor is not None:
        # A row comparison: one range of the (created_at, id) index.
        here = tuple_(created, ident)
        place = tuple_(literal(cursor.created_at, UTCDateTime()), literal(cursor.id))
        query = query.where(here < place if backward else here > place)
    order = (created.desc(), ident.desc()) if backward else (created, ident)
    rows = session.exec(query.order_by(*order).limit(limit + 1)).all()
    more = len(rows) > limit
    found = [
        ItemSummary.of(item, classification=str(classification), withheld=bool(withheld))
        for item, classification, withheld in rows[:limit]
    ]
    if backward:
        found.reverse()
    first, last = (found[0], found[-1]) if found else (None, None)
    if backward:
        following = Cursor.after(last) if last else None
        preceding = Cursor.before(first) if first and more else None
    else:
        following = Cursor.after(last) if last and more else None
        preceding = Cursor.before(first) if first and cursor is not None else None
    return ItemPage(
        tuple(found),
        min(count, COUNT_LIMIT),
        following,
        preceding,
        count_exact=count <= COUNT_LIMIT,
        window=SHORT_TEXT_WINDOW if filters.short_text else None,
    )


def local_day(value: str, zone: tzinfo, *, end: bool) -> datetime:
    """A date (YYYY-MM-DD, in ``zone``) or time (ISO 8601; without an offset, in ``zone``) as UTC,
    for :class:`ItemFilter`. With ``end`` a date means the start of the next day, so a range
    "to" that date includes all of it."""
    try:
        moment = datetime.fromisoformat(value)
        if len(value) == 10 and end:
            moment += timedelta(days=1)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidValueError(f"{value[:40]!r} is not a date (YYYY-MM-DD) or ISO time") from exc
