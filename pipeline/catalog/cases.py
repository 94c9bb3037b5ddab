"""Changing cases and classes: a case's enforcement target (which groups every record about one
person or company), the class of an item or a case, and who handles a case. Each change is a custody
event, and each is refused unless the acting viewer may make it (ACCESS.md): a case or item they may
not know exists is not found; one they may see but not change is forbidden."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from pipeline.catalog.access import origin, require_cleared, require_role, visible_cases, withheld_cases
from pipeline.catalog.models import Case
from pipeline.catalog.people import CaseMember, Classification, Role, UserAccount
from pipeline.catalog.queries.items import locate_item
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer, stricter
from pipeline.custody import CustodyLog
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError, WithheldError

# The classes a custodian sets (``unclassified`` only means no one has yet).
SETTABLE = (
    Classification.NONE,
    Classification.PRIVACY,
    Classification.TRADE_SECRET,
    Classification.STATE_SECRET,
)


def visible_case(session: Session, *, viewer: Viewer, number: str) -> tuple[Case, bool] | None:
    """The case ``number`` if the viewer may know it exists, and whether it is withheld from them."""
    found = session.exec(
        select(Case, withheld_cases(viewer).label("withheld")).where(Case.number == number, visible_cases(viewer))
    ).first()
    return None if found is None else (found[0], bool(found[1]))


def _changeable_case(session: Session, viewer: Viewer, number: str, doing: str) -> Case:
    """The case ``number`` for a custodian to change: :class:`NotFoundError` when the viewer may not
    know it exists, :class:`ForbiddenError` when they may not change it, :class:`WithheldError` when
    it is withheld from them."""
    found = visible_case(session, viewer=viewer, number=number)
    if found is None:
        raise NotFoundError(f"no case {number!r}")
    require_role(viewer, Role.CUSTODIAN, doing=doing)
    case, withheld = found
    if withheld:
        raise WithheldError(f"case {number}", f"case {number}: withheld; an approved access request is needed")
    return case


def set_case_target(session: Session, *, number: str, target: str, viewer: Viewer, tool: str) -> Case:
    """Set the enforcement target of case ``number`` (blank clears it), opening the case if the
    catalog has none by that number; records ``case-updated`` with the old and new target.

    Custodians only: :class:`NotFoundError` for a case the viewer may not know exists (or, for one
    who may not open cases, none at all), :class:`ForbiddenError` for a viewer who is no custodian.
    """
    if session.get(Case, number) is None:
        if not viewer.has(Role.CUSTODIAN):
            raise NotFoundError(f"no case {number!r}")
        case = Case(number=number)
    else:
        case = _changeable_case(session, viewer, number, "set a case's target")
    old = case.target
    case.target = target.strip() or None
    case.updated_at = utcnow()
    session.add(case)
    with CustodyLog(session, viewer.name) as log:
        log.record(
            "case-updated",
            f"case:{number}",
            {"target": {"old": old, "new": case.target}, **origin(viewer)},
            tool=tool,
        )
    return case


@dataclass(frozen=True)
class Classified:
    """A class set on an item or a case: the old and new class set there, and the item's class as it
    now applies (its own or its case's, whichever is stricter; for a case, the case's)."""

    target: str
    old: str
    new: str
    effective: str

    def as_json(self) -> dict[str, object]:
        return {"target": self.target, "old": self.old, "new": self.new, "classification": self.effective}


def set_classification(
    session: Session,
    *,
    viewer: Viewer,
    item_id: str | None = None,
    case_number: str | None = None,
    classification: str,
    tool: str,
) -> Classified:
    """Set the class of the item ``item_id`` names (ID, hash or prefix) or of the case
    ``case_number``, and record ``classified`` with the old and new class. A case's class applies
    to all its items; an item may be classed above its case, never below it in effect.

    Custodians only, cleared for the new class. Raises :class:`InvalidValueError` for no target or
    two, or a class that cannot be set; :class:`NotFoundError` for what the viewer may not know
    exists; :class:`ForbiddenError` (:class:`WithheldError`) for what they may not change.
    """
    if (item_id is None) == (case_number is None):
        raise InvalidValueError("name either an item or a case to classify")
    if classification not in SETTABLE:
        raise InvalidValueError(f"{classification!r} is not a class ({', '.join(SETTABLE)})")
    new = Classification(classification)
    if item_id is not None:
        located = locate_item(session, item_id, viewer=viewer)
        require_role(viewer, Role.CUSTODIAN, doing="classify records")
        if located.withheld:
            raise WithheldError(located.item.id)
        require_cleared(viewer, new, doing=f"class a record {new}")
        item = located.item
        old = item.classification
        item.classification = new
        session.add(item)
        case = session.get(Case, item.case_number) if item.case_number else None
        target = f"item:{item.id}"
        effective = stricter(new, case.classification if case else None)
    else:
        assert case_number is not None
        case = _changeable_case(session, viewer, case_number, "classify cases")
        require_cleared(viewer, new, doing=f"class a case {new}")
        old = case.classification
        case.classification = new
        case.updated_at = utcnow()
        session.add(case)
        target = f"case:{case.number}"
        effective = new
    with CustodyLog(session, viewer.name) as log:
        log.record(
            "classified",
            target,
            {"classification": {"old": old, "new": new.value}, "effective": effective.value, "client": viewer.client},
            tool=tool,
        )
    return Classified(target, old, new.value, effective.value)


def _member_case(session: Session, viewer: Viewer, number: str, doing: str) -> Case:
    """The case whose handlers an admin or custodian changes: admins manage the handlers of every
    case; a custodian those of the cases they may see."""
    case = session.get(Case, number)
    if case is None or not (viewer.has(Role.ADMIN) or visible_case(session, viewer=viewer, number=number)):
        raise NotFoundError(f"no case {number!r}")
    require_role(viewer, Role.CUSTODIAN, Role.ADMIN, doing=doing)
    return case


def _account(session: Session, name: str) -> UserAccount:
    account = session.exec(
        select(UserAccount).where(UserAccount.name == name, col(UserAccount.disabled).is_(False))
    ).first()
    if account is None:
        raise NotFoundError(f"no account {name!r}")
    return account


def assign_case_member(session: Session, *, viewer: Viewer, case_number: str, user_name: str, tool: str) -> CaseMember:
    """Assign the case handler ``user_name`` to case ``case_number`` (they then see its records);
    records ``case-member-added``. Custodians and admins only.

    Raises :class:`NotFoundError` for a case the viewer may not know exists or an account that
    does not exist (or is disabled), :class:`ForbiddenError` for a viewer who may not assign,
    :class:`InvalidValueError` for an account without the case-handler role and
    :class:`ConflictError` when they are assigned already.
    """
    case = _member_case(session, viewer, case_number, "assign case handlers")
    account = _account(session, user_name)
    if Role.CASE_HANDLER not in account.roles:
        raise InvalidValueError(f"{user_name} is not a case handler")
    if session.get(CaseMember, (case.number, account.id)) is not None:
        raise ConflictError(f"{user_name} already handles case {case.number}")
    member = CaseMember(case_number=case.number, user_id=account.id, assigned_by=viewer.name)
    session.add(member)
    with CustodyLog(session, viewer.name) as log:
        log.record("case-member-added", f"case:{case.number}", {"user": user_name, "client": viewer.client}, tool=tool)
    return member


def remove_case_member(session: Session, *, viewer: Viewer, case_number: str, user_name: str, tool: str) -> None:
    """Take the handler ``user_name`` off case ``case_number``; records ``case-member-removed``.
    Custodians and admins only; :class:`NotFoundError` when they do not handle it (see
    :func:`assign_case_member` for the other errors)."""
    case = _member_case(session, viewer, case_number, "remove case handlers")
    account = session.exec(select(UserAccount).where(UserAccount.name == user_name)).first()
    member = session.get(CaseMember, (case.number, account.id)) if account else None
    if member is None:
        raise NotFoundError(f"{user_name} does not handle case {case.number}")
    session.delete(member)
    with CustodyLog(session, viewer.name) as log:
        log.record(
            "case-member-removed", f"case:{case.number}", {"user": user_name, "client": viewer.client}, tool=tool
        )
