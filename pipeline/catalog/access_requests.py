"""Supervised access to ``trade-secret`` and ``state-secret`` records (ACCESS.md): a user asks for
one item, or every record of a case, for a purpose; an approver who is not the requester grants it
for a time window of at most :data:`MAX_GRANT`, or denies it. The request, the decision and (in
:func:`pipeline.catalog.queries.item_detail`) every use of the grant are custody events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlmodel import Session, col, select

from pipeline.catalog.access import SECRET, allowed_classes, cleared_items
from pipeline.catalog.cases import visible_case
from pipeline.catalog.models import Case, Item
from pipeline.catalog.people import AccessRequest, AccessStatus, Role, UserAccount
from pipeline.catalog.queries.items import locate_item
from pipeline.catalog.types import iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ConflictError, ForbiddenError, InvalidValueError, NotFoundError

MAX_GRANT = timedelta(days=30)  # the longest window a grant may run


@dataclass(frozen=True)
class AccessRequestView:
    """One access request and its decision, as the requester, approvers and auditors see it."""

    id: str
    requester: str
    item: str | None
    case: str | None
    purpose: str
    status: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    valid_from: datetime | None
    valid_until: datetime | None

    @property
    def target(self) -> str:
        return f"item:{self.item}" if self.item else f"case:{self.case}"

    def in_force(self, now: datetime | None = None) -> bool:
        """Whether the request is an approved grant whose window includes ``now``."""
        moment = now or utcnow()
        return (
            self.status == AccessStatus.APPROVED
            and self.valid_until is not None
            and (self.valid_from is None or self.valid_from <= moment)
            and moment < self.valid_until
        )

    def as_json(self) -> dict[str, object]:
        return {
            "request": self.id,
            "requester": self.requester,
            "item": self.item,
            "case": self.case,
            "purpose": self.purpose,
            "status": self.status,
            "requested_at": iso(self.requested_at),
            "decided_by": self.decided_by,
            "decided_at": iso(self.decided_at),
            "note": self.note,
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until),
            "in_force": self.in_force(),
        }


def _view(session: Session, request: AccessRequest) -> AccessRequestView:
    ids = {request.requester_id, request.decided_by} - {None}
    names = dict(session.exec(select(UserAccount.id, UserAccount.name).where(col(UserAccount.id).in_(ids))).all())
    return AccessRequestView(
        id=request.id,
        requester=names.get(request.requester_id, request.requester_id),
        item=request.item_id,
        case=request.case_number,
        purpose=request.purpose,
        status=request.status,
        requested_at=request.requested_at,
        decided_by=names.get(request.decided_by, request.decided_by) if request.decided_by else None,
        decided_at=request.decided_at,
        note=request.decision_note,
        valid_from=request.valid_from,
        valid_until=request.valid_until,
    )


def _visible_requests(viewer: Viewer) -> ColumnElement[bool]:
    """The requests the viewer may see: their own; approvers and auditors also every request for
    records whose class they are cleared for; the server's own authority all."""
    if viewer.server:
        return true()
    own = col(AccessRequest.requester_id) == viewer.user_id if viewer.user_id else false()
    if not (viewer.approver or viewer.has(Role.AUDITOR)):
        return own
    cleared = or_(
        and_(
            col(AccessRequest.item_id).is_not(None),
            col(AccessRequest.item_id).in_(select(col(Item.id)).where(cleared_items(viewer))),
        ),
        and_(
            col(AccessRequest.case_number).is_not(None),
            col(AccessRequest.case_number).in_(
                select(col(Case.number)).where(col(Case.classification).in_(allowed_classes(viewer)))
            ),
        ),
    )
    return or_(own, cleared)


def _record(session: Session, viewer: Viewer, action: str, request: AccessRequest, tool: str, **details: Any) -> None:
    target = f"item:{request.item_id}" if request.item_id else f"case:{request.case_number}"
    with CustodyLog(session, viewer.name) as log:
        log.record(action, target, {"request": request.id, **details, "client": viewer.client}, tool=tool)


def request_access(
    session: Session,
    *,
    viewer: Viewer,
    item_id: str | None = None,
    case_number: str | None = None,
    purpose: str,
    tool: str,
) -> AccessRequestView:
    """Ask for access to the secret item ``item_id`` names (ID, hash or prefix) or to every record of
    case ``case_number``, for ``purpose``; records ``access-requested``.

    Raises :class:`InvalidValueError` for no target or two, a blank purpose, an item that needs no
    request or a viewer without an account; :class:`NotFoundError` for what the viewer may not know
    exists.
    """
    if (item_id is None) == (case_number is None):
        raise InvalidValueError("name either an item or a case to request access to")
    reason = purpose.strip()
    if not reason:
        raise InvalidValueError("an access request needs its purpose")
    if viewer.user_id is None:
        raise InvalidValueError("access requests are made by an account (the server's own authority needs none)")
    if item_id is not None:
        located = locate_item(session, item_id, viewer=viewer)
        if located.classification not in SECRET:
            raise InvalidValueError(f"{located.item.id} is {located.classification}: it needs no access request")
        request = AccessRequest(requester_id=viewer.user_id, item_id=located.item.id, purpose=reason)
    else:
        assert case_number is not None
        if visible_case(session, viewer=viewer, number=case_number) is None:
            raise NotFoundError(f"no case {case_number!r}")
        request = AccessRequest(requester_id=viewer.user_id, case_number=case_number, purpose=reason)
    session.add(request)
    session.flush()
    _record(session, viewer, "access-requested", request, tool, purpose=reason)
    return _view(session, request)


def _pending(session: Session, viewer: Viewer, request_id: str, doing: str) -> AccessRequest:
    """The request an approver decides: :class:`NotFoundError` when the viewer may not see it,
    :class:`ForbiddenError` when they may not decide it, :class:`ConflictError` when it is decided."""
    request = session.exec(
        select(AccessRequest).where(AccessRequest.id == request_id, _visible_requests(viewer))
    ).first()
    if request is None:
        raise NotFoundError(f"no access request {request_id!r}")
    if not viewer.approver:
        raise ForbiddenError(f"{viewer.name} may not {doing}: that needs the approver right")
    if viewer.user_id is not None and request.requester_id == viewer.user_id:
        raise ForbiddenError(f"{viewer.name} may not {doing}: it is their own request")
    if request.status != AccessStatus.PENDING:
        raise ConflictError(f"access request {request_id} is {request.status} already")
    return request


def _decider(viewer: Viewer) -> str:
    """Who decided, as ``AccessRequest.decided_by`` holds it: the account, or the server's name."""
    return viewer.user_id or viewer.name[:26]


def approve_access(
    session: Session,
    *,
    viewer: Viewer,
    request_id: str,
    until: datetime,
    note: str | None = None,
    tool: str,
) -> AccessRequestView:
    """Grant the pending request ``request_id`` from now until ``until`` (timezone-aware, in the
    future, at most :data:`MAX_GRANT` away); records ``access-approved``.

    Raises :class:`NotFoundError` for a request the viewer may not see, :class:`ForbiddenError`
    for a viewer who is no approver or is the requester, :class:`ConflictError` for a request
    decided already and :class:`InvalidValueError` for a window that cannot be granted.
    """
    request = _pending(session, viewer, request_id, "approve access requests")
    now = utcnow()
    if until.utcoffset() is None:
        raise InvalidValueError(f"{until.isoformat()} has no time zone")
    if until <= now:
        raise InvalidValueError(f"{until.isoformat()} is not in the future")
    if until - now > MAX_GRANT:
        raise InvalidValueError(f"{until.isoformat()} is more than {MAX_GRANT.days} days away")
    request.status = AccessStatus.APPROVED
    request.decided_by = _decider(viewer)
    request.decided_at = now
    request.decision_note = (note or "").strip() or None
    request.valid_from = now
    request.valid_until = until
    session.add(request)
    _record(
        session,
        viewer,
        "access-approved",
        request,
        tool,
        purpose=request.purpose,
        until=until.isoformat(),
        note=request.decision_note,
    )
    return _view(session, request)


def deny_access(
    session: Session, *, viewer: Viewer, request_id: str, note: str | None = None, tool: str
) -> AccessRequestView:
    """Deny the pending request ``request_id``; records ``access-denied`` (errors as
    :func:`approve_access`)."""
    request = _pending(session, viewer, request_id, "deny access requests")
    request.status = AccessStatus.DENIED
    request.decided_by = _decider(viewer)
    request.decided_at = utcnow()
    request.decision_note = (note or "").strip() or None
    session.add(request)
    _record(session, viewer, "access-denied", request, tool, purpose=request.purpose, note=request.decision_note)
    return _view(session, request)


def list_access_requests(session: Session, *, viewer: Viewer, status: str | None = None) -> list[AccessRequestView]:
    """The access requests the viewer may see (their own; approvers and auditors every request for
    records they are cleared for), of one status when given, newest first."""
    if status is not None and status not in set(AccessStatus):
        raise InvalidValueError(f"{status!r} is not a request status ({', '.join(AccessStatus)})")
    query = select(AccessRequest).where(_visible_requests(viewer))
    if status is not None:
        query = query.where(AccessRequest.status == status)
    query = query.order_by(col(AccessRequest.requested_at).desc(), col(AccessRequest.id).desc())
    return [_view(session, request) for request in session.exec(query).all()]
