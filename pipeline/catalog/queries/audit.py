"""The auditor's reads of the custody log (ACCESS.md: the whole log, its verification and the
retrieval history are for admins and auditors): :func:`custody_log` pages through the events newest
first with filters, :func:`retrievals` is the same for the retrieval events only, and
:func:`verify_log` walks the hash chain and records that it did.

Auditors see every event, but an event about a record the viewer may not see in full shows its
target, actor, time and action without what the record holds:

- about an item, a case or a disc package the viewer may not know exists (not cleared for its
  class; an admin without a content role sees none): no details at all;
- about a ``trade-secret`` or ``state-secret`` item or case the viewer is cleared for but holds no
  approved access request for (its facts are withheld from listings too): only the supervision
  details (:data:`SUPERVISION_KEYS`: interface, client, request, purpose, window, note), never the
  facts, names, paths or hashes the other details carry.

Events about a sighting follow the item it became. Such events are marked ``redacted``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, literal, or_
from sqlmodel import Session, col, select

from pipeline.catalog.access import (
    RETRIEVALS,
    require_role,
    visible_cases,
    visible_items,
    visible_packages,
    withheld_cases,
    withheld_items,
)
from pipeline.catalog.models import Case, CustodyEvent, Item, Package, Sighting
from pipeline.catalog.people import Role
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.custody import ChainReport, CustodyLog, check_chain
from pipeline.errors import InvalidValueError

# Every custody action that is a retrieval of a record's content or facts.
RETRIEVAL_ACTIONS = RETRIEVALS | frozenset(
    {"viewed", "played", "viewed-image", "downloaded", "access-used", "package-requested"}
)
# The details of an event about a withheld record that say how it was retrieved, not what it holds.
SUPERVISION_KEYS = frozenset({"via", "client", "request", "purpose", "until", "note"})
MAX_LIMIT = 500
VALUE_LENGTH = 255  # the longest actor, action or target the log holds
LOG_TARGET = "custody-log"  # the target of ``audit-verified``


class Exposure(StrEnum):
    """How much of an event about a record the viewer is shown."""

    FULL = "full"
    SUPERVISION = "supervision"  # withheld record: only SUPERVISION_KEYS
    HIDDEN = "hidden"  # a record the viewer may not know exists: no details


@dataclass(frozen=True)
class LogEvent:
    """One custody event as the viewer is shown it."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    tool: str | None
    details: dict[str, Any]
    hash: str
    redacted: bool

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "tool": self.tool,
            "details": self.details,
            "hash": self.hash,
            "redacted": self.redacted,
        }


@dataclass(frozen=True)
class LogPage:
    """A page of events, newest first; ``next_before`` is the ``before_seq`` of the next (older)
    page, None on the last one."""

    events: tuple[LogEvent, ...]
    next_before: int | None

    def as_json(self) -> dict[str, object]:
        return {"events": [e.as_json() for e in self.events], "next_before": self.next_before}


def _checked(value: str | None, what: str) -> str | None:
    """A filter value as given (None or blank: no filter); :class:`InvalidValueError` for one the
    log cannot hold (too long, control characters)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > VALUE_LENGTH or not value.isprintable():
        raise InvalidValueError(f"the {what} filter must be printable and at most {VALUE_LENGTH} characters")
    return value


def _moment(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise InvalidValueError(f"the {what} time has no time zone")
    return value


def _require_auditor(viewer: Viewer, doing: str) -> None:
    require_role(viewer, Role.ADMIN, Role.AUDITOR, doing=doing)


def _split(targets: Iterable[str], kind: str) -> set[str]:
    prefix = f"{kind}:"
    return {t[len(prefix) :] for t in targets if t.startswith(prefix)}


def _exposures(session: Session, viewer: Viewer, targets: Sequence[str]) -> dict[str, Exposure]:
    """What the viewer is shown of the events about each of ``targets`` (targets not named:
    everything). Decided in SQL by the same conditions every query applies."""
    if viewer.server:
        return {}
    found: dict[str, Exposure] = {}
    sightings = _split(targets, "sighting")
    sighting_items: dict[str, str] = {}
    if sightings:
        rows = session.exec(
            select(Sighting.id, Sighting.item_id).where(
                col(Sighting.id).in_(sightings), col(Sighting.item_id).is_not(None)
            )
        ).all()
        sighting_items = {sid: str(item_id) for sid, item_id in rows}
    item_ids = _split(targets, "item") | set(sighting_items.values())
    if item_ids:
        shown = dict(
            session.exec(
                select(Item.id, withheld_items(viewer)).where(col(Item.id).in_(item_ids), visible_items(viewer))
            ).all()
        )
        for item_id in item_ids:
            exposure = Exposure.HIDDEN
            if item_id in shown:
                exposure = Exposure.SUPERVISION if shown[item_id] else Exposure.FULL
            found[f"item:{item_id}"] = exposure
        for sighting_id, item_id in sighting_items.items():
            found[f"sighting:{sighting_id}"] = found[f"item:{item_id}"]
    numbers = _split(targets, "case")
    if numbers:
        known = set(session.exec(select(Case.number).where(col(Case.number).in_(numbers))).all())
        seen = dict(
            session.exec(
                select(Case.number, withheld_cases(viewer)).where(col(Case.number).in_(numbers), visible_cases(viewer))
            ).all()
        )
        for number in numbers:
            if number in seen:
                found[f"case:{number}"] = Exposure.SUPERVISION if seen[number] else Exposure.FULL
            elif number in known:
                found[f"case:{number}"] = Exposure.HIDDEN
            # a number without a case row is ``none``: its events are shown in full
    packages = _split(targets, "package")
    if packages:
        dialect = session.get_bind().dialect.name
        seen_packages = set(
            session.exec(
                select(Package.id).where(col(Package.id).in_(packages), visible_packages(viewer, dialect))
            ).all()
        )
        for package_id in packages:
            found[f"package:{package_id}"] = Exposure.FULL if package_id in seen_packages else Exposure.HIDDEN
    return found


def _shown(row: CustodyEvent, exposure: Exposure) -> LogEvent:
    try:
        details = json.loads(row.details)
    except ValueError:
        details = {"unreadable": row.details}
    if not isinstance(details, dict):
        details = {"value": details}
    redacted = False
    if exposure is Exposure.HIDDEN:
        redacted, details = bool(details), {}
    elif exposure is Exposure.SUPERVISION:
        kept = {key: value for key, value in details.items() if key in SUPERVISION_KEYS}
        redacted, details = len(kept) != len(details), kept
    return LogEvent(
        seq=row.seq or 0,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        tool=row.tool,
        details=details,
        hash=row.hash,
        redacted=redacted,
    )


def _page(
    session: Session, viewer: Viewer, conditions: list[ColumnElement[bool]], limit: int, before_seq: int | None
) -> LogPage:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValueError(f"the page size must be between 1 and {MAX_LIMIT}")
    if before_seq is not None:
        if before_seq < 1:
            raise InvalidValueError("before_seq must be a positive event number")
        conditions.append(col(CustodyEvent.seq) < before_seq)
    query = select(CustodyEvent).where(*conditions).order_by(col(CustodyEvent.seq).desc()).limit(limit + 1)
    rows = list(session.exec(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    exposures = _exposures(session, viewer, sorted({row.target for row in rows}))
    events = tuple(_shown(row, exposures.get(row.target, Exposure.FULL)) for row in rows)
    return LogPage(events, rows[-1].seq if more and rows else None)


def _filters(
    viewer: Viewer,
    *,
    actor: str | None,
    action: str | None,
    item: str | None,
    case: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if (who := _checked(actor, "user")) is not None:
        conditions.append(col(CustodyEvent.actor) == who)
    if (what := _checked(action, "action")) is not None:
        conditions.append(col(CustodyEvent.action) == what)
    if (item_id := _checked(item, "item")) is not None:
        conditions.append(col(CustodyEvent.target) == f"item:{item_id}")
    if (number := _checked(case, "case")) is not None:
        # The case's own events, and those of its items the viewer may know are in it.
        its_items = select(literal("item:") + col(Item.id)).where(
            col(Item.case_number) == number, visible_items(viewer)
        )
        conditions.append(or_(col(CustodyEvent.target) == f"case:{number}", col(CustodyEvent.target).in_(its_items)))
    if (start := _moment(since, "from")) is not None:
        conditions.append(col(CustodyEvent.at) >= start)
    if (end := _moment(until, "to")) is not None:
        conditions.append(col(CustodyEvent.at) < end)
    return conditions


def custody_log(
    session: Session,
    *,
    viewer: Viewer,
    actor: str | None = None,
    action: str | None = None,
    item: str | None = None,
    case: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> LogPage:
    """A page of the custody log, newest first, of the events older than ``before_seq`` (keyset
    paging: follow :attr:`LogPage.next_before`). Filters: the actor and action (exact), the item
    (its ID: events whose target is the item), the case (its own events and those of its items
    the viewer may know of) and the time range (``since`` included, ``until`` not; timezone-aware).

    Raises :class:`ForbiddenError` unless the viewer is an admin or auditor, and
    :class:`InvalidValueError` for a filter that cannot be used.
    """
    _require_auditor(viewer, "read the custody log")
    conditions = _filters(viewer, actor=actor, action=action, item=item, case=case, since=since, until=until)
    return _page(session, viewer, conditions, limit, before_seq)


def retrievals(
    session: Session,
    *,
    viewer: Viewer,
    item: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> LogPage:
    """The retrieval history (:data:`RETRIEVAL_ACTIONS`: views, plays, downloads, uses of a grant,
    package requests), of one item and/or by one user, newest first; paged and refused as
    :func:`custody_log`."""
    _require_auditor(viewer, "read the retrieval history")
    conditions = _filters(viewer, actor=user, action=None, item=item, case=None, since=since, until=until)
    conditions.append(col(CustodyEvent.action).in_(sorted(RETRIEVAL_ACTIONS)))
    return _page(session, viewer, conditions, limit, before_seq)


def verify_log(session: Session, *, viewer: Viewer, tool: str) -> ChainReport:
    """Walk the whole hash chain (:func:`pipeline.custody.check_chain`) and record the outcome as
    an ``audit-verified`` event (head, count, ok, and where it breaks). Raises
    :class:`ForbiddenError` unless the viewer is an admin or auditor."""
    _require_auditor(viewer, "verify the custody log")
    report = check_chain(session)
    details: dict[str, object] = {"head": report.head, "count": report.events, "ok": report.ok}
    if not report.ok:
        details["broken_at"] = report.broken_at
    if viewer.client:
        details["client"] = viewer.client
    with CustodyLog(session, viewer.name) as log:
        log.record("audit-verified", LOG_TARGET, details, tool=tool)
    return report
