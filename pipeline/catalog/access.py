"""What a viewer may know exists, as SQL (ACCESS.md, STYLE.md 16): every query of items, cases and
packages narrows its statement with these conditions before anything is read, so a record the
viewer may not see never leaves the database, and is never counted.

- An item is visible to a role that may list items (custodian and auditor: all; case handler: the
  items of the cases they are assigned to) when the viewer is cleared for its class: its own or its
  case's, whichever is stricter (``none`` and ``unclassified`` need no clearance).
- A visible ``trade-secret`` or ``state-secret`` item is *withheld* (listed with its ID and class,
  without its name or facts) until the viewer holds an approved, unexpired access request for it or
  its case.
- The server's own authority (:meth:`Viewer.local`) sees everything and needs no grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, false, func, literal, not_, or_, true
from sqlmodel import Session, col, select

from pipeline.catalog.models import Case, Item, Package
from pipeline.catalog.people import (
    STRICTNESS,
    AccessRequest,
    AccessStatus,
    CaseMember,
    Classification,
    Role,
    StatedPurpose,
)
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.errors import ForbiddenError, PurposeRequiredError, WithheldError

# The classes whose records need an approved access request, besides the clearance.
SECRET = (Classification.TRADE_SECRET, Classification.STATE_SECRET)
# Custody actions that are retrievals: the retrieval history only auditors (and admins) read.
RETRIEVALS = frozenset({"viewed", "access-used", "played", "viewed-image", "downloaded"})
# The roles that may list and look at items (ACCESS.md); admin and dock see none.
READERS = (Role.CUSTODIAN, Role.AUDITOR)


def origin(viewer: Viewer) -> dict[str, str]:
    """Where a change came from, for the details of its custody event: the client address when
    there is one (the command line on the server has none)."""
    return {"client": viewer.client} if viewer.client else {}


def require_role(viewer: Viewer, *roles: Role, doing: str) -> None:
    """:class:`ForbiddenError` unless the viewer holds one of ``roles`` (call it once the record is
    known to be visible to them: a record they may not know of is "not found" instead)."""
    if not viewer.has(*roles):
        needed = " or ".join(role.value for role in roles)
        raise ForbiddenError(f"{viewer.name} may not {doing}: that needs the {needed} role")


def require_cleared(viewer: Viewer, classification: str, *, doing: str) -> None:
    """:class:`ForbiddenError` unless the viewer is cleared for ``classification``."""
    if not viewer.cleared_for(classification):
        raise ForbiddenError(f"{viewer.name} may not {doing}: not cleared for {classification}")


def allowed_classes(viewer: Viewer) -> tuple[str, ...]:
    """The classes the viewer may see: ``none``, ``unclassified`` and those they are cleared for."""
    return (Classification.NONE, Classification.UNCLASSIFIED, *sorted(viewer.clearances))


def _rank(value: Any) -> ColumnElement[int]:
    """A class's place in :data:`STRICTNESS`; a class the catalog does not know ranks strictest."""
    return case({c.value: index for index, c in enumerate(STRICTNESS)}, value=value, else_=len(STRICTNESS))


def case_class(case_number: Any) -> ColumnElement[str]:
    """The class of the case ``case_number`` (a column) names; when it names none, the lowest
    (``unclassified``), so the item's own class applies."""
    found = select(col(Case.classification)).where(col(Case.number) == case_number).limit(1).scalar_subquery()
    return func.coalesce(found, literal(Classification.UNCLASSIFIED.value))


def effective_class() -> ColumnElement[str]:
    """An item's class as it applies: its own or its case's, whichever is stricter."""
    own = col(Item.classification)
    of_case = case_class(col(Item.case_number))
    return case((_rank(of_case) > _rank(own), of_case), else_=own)


def member_cases(viewer: Viewer) -> Any:
    """The numbers of the cases the viewer is assigned to (a subquery)."""
    return select(col(CaseMember.case_number)).where(col(CaseMember.user_id) == viewer.user_id)


def _case_scope(viewer: Viewer, case_number: Any) -> ColumnElement[bool]:
    """Whether the viewer's roles reach records of the case ``case_number`` (a column) names."""
    if viewer.server or viewer.has(*READERS):
        return true()
    if viewer.has(Role.CASE_HANDLER) and viewer.user_id is not None:
        return and_(col(case_number).is_not(None), col(case_number).in_(member_cases(viewer)))
    return false()


def visible_items(viewer: Viewer) -> ColumnElement[bool]:
    """The condition on :class:`Item` for the items the viewer may know exist."""
    if viewer.server:
        return true()
    return and_(_case_scope(viewer, Item.case_number), _class_allowed(viewer))


def _class_allowed(viewer: Viewer) -> ColumnElement[bool]:
    """Whether the viewer may see an item's class as it applies (:func:`effective_class`).

    When the classes the viewer may see are the least strict ones up to some class (no clearance,
    every clearance, or privacy alone: the usual cases), the stricter of two classes is one of them
    exactly when both are, so the item's own class and its case's are tested apart: the case's by
    the few cases of a class the viewer may not see, read once, instead of working out each item's
    class as it applies (which reads its case several times per item)."""
    allowed = allowed_classes(viewer)
    if set(allowed) != set(STRICTNESS[: len(set(allowed))]):
        return effective_class().in_(allowed)
    barred = select(col(Case.number)).where(col(Case.classification).not_in(allowed))
    return and_(
        col(Item.classification).in_(allowed),
        or_(col(Item.case_number).is_(None), col(Item.case_number).not_in(barred)),
    )


def cleared_items(viewer: Viewer) -> ColumnElement[bool]:
    """The condition on :class:`Item` for the items whose class the viewer is cleared for, whatever
    their roles (an approver deciding a request needs no content role)."""
    if viewer.server:
        return true()
    return effective_class().in_(allowed_classes(viewer))


def _grant_in_force(viewer: Viewer, now: datetime) -> ColumnElement[bool]:
    return and_(
        col(AccessRequest.requester_id) == viewer.user_id,
        col(AccessRequest.status) == AccessStatus.APPROVED.value,
        col(AccessRequest.valid_until) > now,
        or_(col(AccessRequest.valid_from).is_(None), col(AccessRequest.valid_from) <= now),
    )


def granted_items(viewer: Viewer, now: datetime | None = None) -> ColumnElement[bool]:
    """The condition on :class:`Item` for the items the viewer holds an approved, unexpired access
    request for (for the item itself or for its case)."""
    if viewer.user_id is None:
        return false()
    return exists().where(
        _grant_in_force(viewer, now or utcnow()),
        or_(
            col(AccessRequest.item_id) == col(Item.id),
            and_(col(AccessRequest.case_number).is_not(None), col(AccessRequest.case_number) == col(Item.case_number)),
        ),
    )


def grant_for(session: Session, viewer: Viewer, item: Item, now: datetime | None = None) -> AccessRequest | None:
    """The approved, unexpired access request the viewer holds for ``item`` or its case (the one
    that runs longest), or None."""
    if viewer.user_id is None:
        return None
    scope = col(AccessRequest.item_id) == item.id
    if item.case_number is not None:
        scope = or_(scope, col(AccessRequest.case_number) == item.case_number)
    query = (
        select(AccessRequest)
        .where(_grant_in_force(viewer, now or utcnow()), scope)
        .order_by(col(AccessRequest.valid_until).desc())
        .limit(1)
    )
    return session.exec(query).first()


def withheld_items(viewer: Viewer, now: datetime | None = None) -> ColumnElement[bool]:
    """The condition on :class:`Item` for the visible items shown only by ID and class: secret ones
    the viewer holds no grant for.

    The secret classes are the strictest two, so an item's class as it applies is secret exactly
    when its own or its case's is, both being classes the catalog knows (an unknown one applies
    instead, and is not secret): tested apart, with the cases read once, not each item's case
    several times."""
    if viewer.server:
        return false()
    known = [c.value for c in STRICTNESS]
    secret_cases = select(col(Case.number)).where(col(Case.classification).in_(SECRET))
    unknown_cases = select(col(Case.number)).where(col(Case.classification).not_in(known))
    return and_(
        or_(
            col(Item.classification).in_(SECRET),
            and_(col(Item.case_number).is_not(None), col(Item.case_number).in_(secret_cases)),
        ),
        col(Item.classification).in_(known),
        or_(col(Item.case_number).is_(None), col(Item.case_number).not_in(unknown_cases)),
        not_(granted_items(viewer, now)),
    )


def visible_cases(viewer: Viewer) -> ColumnElement[bool]:
    """The condition on :class:`Case` for the cases the viewer may know exist: the viewer's roles
    reach it and the viewer is cleared for its class."""
    if viewer.server:
        return true()
    return and_(_case_scope(viewer, Case.number), col(Case.classification).in_(allowed_classes(viewer)))


def withheld_cases(viewer: Viewer, now: datetime | None = None) -> ColumnElement[bool]:
    """The condition on :class:`Case` for visible secret cases the viewer holds no grant for (their
    target is withheld)."""
    if viewer.server:
        return false()
    if viewer.user_id is None:
        return col(Case.classification).in_(SECRET)
    granted = exists().where(_grant_in_force(viewer, now or utcnow()), col(AccessRequest.case_number) == Case.number)
    return and_(col(Case.classification).in_(SECRET), not_(granted))


def case_number_visible(viewer: Viewer, case_number: Any) -> ColumnElement[bool]:
    """Whether the case ``case_number`` (a column) is one the viewer may know of: their roles reach
    it, and it is not a case of a class they are not cleared for (a number without a case row is
    ``none``)."""
    if viewer.server:
        return true()
    uncleared = exists().where(
        col(Case.number) == case_number, not_(col(Case.classification).in_(allowed_classes(viewer)))
    )
    return and_(_case_scope(viewer, case_number), not_(uncleared))


def visible_packages(viewer: Viewer, dialect: str) -> ColumnElement[bool]:
    """The condition on :class:`Package` for the packages the viewer may know exist: its case is
    one they may know of and every item in it is visible to them. ``dialect`` is the database's
    (the item list is JSON, read differently by SQLite and PostgreSQL)."""
    if viewer.server:
        return true()
    if dialect == "postgresql":
        listed = func.json_array_elements_text(Package.item_ids).table_valued("value").render_derived()
    else:
        listed = func.json_each(Package.item_ids).table_valued("value")
    hidden = (
        select(literal(1))
        .select_from(listed)
        .where(listed.c.value.not_in(select(col(Item.id)).where(visible_items(viewer))))
    )
    return and_(case_number_visible(viewer, Package.case_number), not_(exists(hidden)))


@dataclass(frozen=True)
class RetrievalTerms:
    """On what terms a viewer may see an item's content: the purpose stated (given now, kept for
    the session, or the grant's) and the access request in force for a secret item."""

    purpose: str | None
    grant: AccessRequest | None


def retrieval_terms(
    session: Session, viewer: Viewer, item: Item, classification: str, purpose: str | None
) -> RetrievalTerms:
    """The terms on which ``viewer`` may see the content of ``item`` (visible to them, of the class
    ``classification`` as it applies): a ``trade-secret`` or ``state-secret`` item needs an
    approved, unexpired access request (its purpose stands when none is given); a ``privacy`` item
    needs a purpose, stated once per item and web session (:func:`purpose_for_session`). The
    server's own authority needs neither.

    Raises :class:`WithheldError` without a grant and :class:`PurposeRequiredError` without a
    purpose.
    """
    stated = (purpose or "").strip() or None
    grant: AccessRequest | None = None
    if not viewer.server and classification in SECRET:
        grant = grant_for(session, viewer, item)
        if grant is None:
            raise WithheldError(item.id, f"{item.id}: {classification}; an approved access request is needed to see it")
        stated = stated or grant.purpose
    elif not viewer.server and classification == Classification.PRIVACY:
        stated = purpose_for_session(session, viewer, item.id, stated)
    return RetrievalTerms(stated, grant)


def stated_purpose(session: Session, viewer: Viewer, item_id: str) -> str | None:
    """The purpose the viewer stated for ``item_id`` earlier in their web session, or None."""
    if viewer.session_id is None or viewer.user_id is None:
        return None
    return session.exec(
        select(StatedPurpose.purpose)
        .where(
            StatedPurpose.session_id == viewer.session_id,
            StatedPurpose.user_id == viewer.user_id,
            StatedPurpose.item_id == item_id,
        )
        .order_by(col(StatedPurpose.at).desc())
        .limit(1)
    ).first()


def purpose_for_session(session: Session, viewer: Viewer, item_id: str, given: str | None) -> str:
    """The purpose of a retrieval of ``item_id``: the one given now (kept for the viewer's
    session), or the one stated earlier in the session. :class:`PurposeRequiredError` when neither."""
    given = (given or "").strip() or None
    if given is not None:
        if viewer.session_id is not None and viewer.user_id is not None:
            session.add(
                StatedPurpose(session_id=viewer.session_id, user_id=viewer.user_id, item_id=item_id, purpose=given)
            )
        return given
    earlier = stated_purpose(session, viewer, item_id)
    if earlier:
        return earlier
    raise PurposeRequiredError(item_id)
