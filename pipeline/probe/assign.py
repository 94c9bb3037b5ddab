"""Facts set by hand (``evidence assign``, the web form): they win over extracted ones, the item is
assessed again (deadline, late flag, issues), and the old and new values go into the custody log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlmodel import col, select

from pipeline.catalog.access import origin, require_role, visible_cases
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import REQUIRED_FACTS, Case, ItemFact
from pipeline.catalog.people import Role
from pipeline.catalog.queries import locate_item
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError, WithheldError
from pipeline.probe.choose import parse_time
from pipeline.probe.stage import ProbeContext, assess


@dataclass(frozen=True)
class Assignment:
    """What changed on one item (each field's old and new value) and the issues it has now."""

    item: str
    changes: dict[str, dict[str, str | None]]
    issues: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"item": self.item, "changes": self.changes, "issues": list(self.issues)}


def manual_capture_time(value: str, zone: ZoneInfo) -> str:
    """A capture time given by hand as ISO 8601 with its offset (a time without one is ``zone``'s
    local time). :class:`InvalidValueError` when it cannot be read or lies in the future."""
    moment = parse_time(value.strip(), zone)
    if moment is None:
        raise InvalidValueError(
            f"{value!r} is not a time: give ISO 8601, e.g. 2026-11-20T14:30 (site time) or 2026-11-20T06:30Z"
        )
    if moment > utcnow():
        raise InvalidValueError(f"{value!r} lies in the future")
    return moment.astimezone(zone).isoformat()


def checked_facts(facts: Mapping[str, str], zone: ZoneInfo) -> dict[str, str]:
    """The facts to set, trimmed, with the capture time read (see :func:`manual_capture_time`).
    :class:`InvalidValueError` for none at all, a field that is not a required fact, or a blank value."""
    if unknown := sorted(set(facts) - set(REQUIRED_FACTS)):
        raise InvalidValueError(f"{', '.join(unknown)}: not a fact that is set by hand ({', '.join(REQUIRED_FACTS)})")
    values = {name: value.strip() for name, value in facts.items()}
    if any("\x00" in value for value in values.values()):
        raise InvalidValueError("a fact cannot hold a NUL character")
    if long := [name for name in ("case_number", "collector") if len(values.get(name, "")) > 100]:
        raise InvalidValueError(f"{', '.join(long)}: at most 100 characters")
    if not values:
        raise InvalidValueError("nothing to assign")
    if empty := [name for name, value in values.items() if not value]:
        raise InvalidValueError(f"{', '.join(empty)} cannot be empty")
    if "captured_at" in values:
        values["captured_at"] = manual_capture_time(values["captured_at"], zone)
    return values


def assign_facts(ctx: ProbeContext, *, ident: str, facts: Mapping[str, str], viewer: Viewer) -> Assignment:
    """Set ``facts`` (field name to value, see :func:`checked_facts`) on the item ``ident`` names as
    the ``viewer``'s, in one transaction: earlier manual values of those fields are replaced, a case
    number the catalog does not know opens that case (``case-opened``), the item is assessed again,
    and ``assigned`` records each field's old and new value.

    Raises :class:`InvalidValueError` for unusable facts, :class:`NotFoundError` when ``ident``
    names no single item the viewer may know exists (or the case named is one they may not know),
    :class:`ForbiddenError` when the viewer is no custodian (:class:`WithheldError` when the item is
    withheld from them), and :class:`ConflictError` for a capture time later than the record's
    arrival (beyond the clock drift tolerated); nothing is changed then.
    """
    values = checked_facts(facts, ctx.zone)
    with session_scope(ctx.engine) as session, CustodyLog(session, viewer.name) as log:
        located = locate_item(session, ident, viewer=viewer)
        require_role(viewer, Role.CUSTODIAN, doing="set facts")
        if located.withheld:
            raise WithheldError(located.item.id)
        found = located.item
        if "captured_at" in values and found.received_at is not None:
            captured = datetime.fromisoformat(values["captured_at"])
            if captured > found.received_at + timedelta(seconds=ctx.drift_tolerance):
                raise ConflictError(
                    f"{found.id}: capture time {values['captured_at']} is after the record arrived "
                    f"({found.received_at.astimezone(ctx.zone).isoformat()})"
                )
        if "case_number" in values:
            number = values["case_number"]
            if session.get(Case, number) is None:
                session.add(Case(number=number))
                log.record("case-opened", f"case:{number}", {"via": "assign", **origin(viewer)}, tool=ctx.tool)
            elif session.exec(select(Case.number).where(Case.number == number, visible_cases(viewer))).first() is None:
                raise NotFoundError(f"no case {number!r} that records can be assigned to")
        changes: dict[str, dict[str, str | None]] = {}
        for name, value in values.items():
            old = getattr(found, name)
            changes[name] = {"old": old.isoformat() if isinstance(old, datetime) else old, "new": value}
            session.execute(
                delete(ItemFact).where(
                    col(ItemFact.item_id) == found.id,
                    col(ItemFact.field) == name,
                    col(ItemFact.source).like("manual:%"),
                )
            )
            session.add(ItemFact(item_id=found.id, field=name, value=value, source=f"manual:{viewer.name}"))
        session.flush()
        assessment = assess(session, ctx, found)
        log.record("assigned", f"item:{found.id}", {"changes": changes, **origin(viewer)}, tool=ctx.tool)
        return Assignment(found.id, changes, tuple(code for code, _ in assessment.issues))
