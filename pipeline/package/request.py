"""Asking for a case's items on disc: which items (all of the case's, or chosen ones of it), their
access copies, and whether each fits the medium. A request that cannot be met is refused before
anything is recorded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlmodel import Session, col, select

from pipeline.catalog.access import origin, require_role, visible_cases, visible_items, withheld_items
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Case, Derivative, DerivativeStatus, Item, Package
from pipeline.catalog.people import Role
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ForbiddenError, NotFoundError
from pipeline.package.context import PackageContext
from pipeline.package.errors import PackageError
from pipeline.package.media import Medium, medium
from pipeline.package.plan import PlannedItem, plan_discs

ACCESS_KINDS = ("video-access", "audio-access", "image-access")


def request_package(
    ctx: PackageContext,
    *,
    viewer: Viewer,
    case_number: str,
    item_ids: Sequence[str] = (),
    media: str = "dvd",
    capacity: int | None = None,
    with_access_copies: bool = False,
    producer: str | None = None,
    out_dir: Path | None = None,
    purpose: str | None = None,
) -> str:
    """Record a request for a case's items (all of them, or ``item_ids``) on disc; return its id.

    The plan is made now, so a request that cannot be met (an unknown item, an item of another
    case, an item larger than the medium) is refused before anything is recorded.

    Only custodians and the case's handlers may ask (ACCESS.md), for a case they may know of
    (:class:`NotFoundError` otherwise) and only for items they may see: an item they may not know
    exists is not found, one withheld from them is :class:`ForbiddenError` naming it. The request
    is recorded as ``package-requested`` with who asked, from where and for what.
    """
    target = medium(media, margin=ctx.margin, capacity=capacity)
    with session_scope(ctx.engine) as session:
        check_requester(session, viewer, case_number)
        if item_ids:  # before saying which case an item belongs to
            check_items(session, viewer, item_ids)
        items = select_items(session, case_number, item_ids)
        check_items(session, viewer, [item.id for item in items])
        copies = access_copies(session, [item.id for item in items]) if with_access_copies else {}
        plan_package(items, copies, target, margin=ctx.margin)
        package = Package(
            case_number=case_number,
            item_ids=[item.id for item in items],
            requested_by=viewer.name,
            purpose=purpose,
            producer=producer or viewer.name,
            media=media,
            capacity=target.capacity,
            with_access_copies=with_access_copies,
            out_dir=str((out_dir or ctx.packages_dir).absolute()),
        )
        session.add(package)
        with CustodyLog(session, viewer.name) as log:
            log.record(
                "package-requested",
                f"package:{package.id}",
                {
                    "case": case_number,
                    "items": package.item_ids,
                    "media": media,
                    "capacity": target.capacity,
                    "with_access_copies": with_access_copies,
                    "producer": package.producer,
                    "purpose": purpose,
                    **origin(viewer),
                },
            )
        return package.id


def check_requester(session: Session, viewer: Viewer, case_number: str) -> None:
    """:class:`NotFoundError` unless the viewer may know of the case (a case handler: one they are
    assigned to); :class:`ForbiddenError` unless they may ask for its discs (custodian or case
    handler)."""
    if viewer.server:
        return
    if session.exec(select(Case.number).where(Case.number == case_number, visible_cases(viewer))).first() is None:
        raise NotFoundError(f"no case {case_number!r}")
    require_role(viewer, Role.CUSTODIAN, Role.CASE_HANDLER, doing="request disc packages")


def check_items(session: Session, viewer: Viewer, ids: Sequence[str]) -> None:
    """:class:`NotFoundError` for an item the viewer may not know exists (never naming it),
    :class:`ForbiddenError` naming the items withheld from them."""
    if viewer.server:
        return
    rows = session.exec(
        select(col(Item.id), withheld_items(viewer)).where(col(Item.id).in_(ids), visible_items(viewer))
    ).all()
    seen = {item_id: bool(held) for item_id, held in rows}
    if len(seen) < len(set(ids)):
        raise NotFoundError("the package holds items that are not found")
    held = sorted(item_id for item_id, withheld in seen.items() if withheld)
    if held:
        raise ForbiddenError(
            f"{viewer.name} may not package withheld items (an approved access request is needed): {', '.join(held)}"
        )


def select_items(session: Session, case_number: str, item_ids: Sequence[str]) -> list[Item]:
    """The items to package in capture order: ``item_ids`` (each of the case), or all of the case's."""
    if item_ids:
        items = []
        for item_id in dict.fromkeys(item_ids):
            item = session.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"no item {item_id}")
            if item.case_number != case_number:
                assigned = f"case {item.case_number}" if item.case_number else "no case yet"
                raise PackageError(f"item {item_id} belongs to {assigned}, not to case {case_number}")
            items.append(item)
    else:
        items = list(session.exec(select(Item).where(Item.case_number == case_number)).all())
    if not items:
        raise PackageError(f"case {case_number} has no items to package")
    return sorted(items, key=_order)


def access_copies(session: Session, item_ids: list[str]) -> dict[str, list[Derivative]]:
    """Each item's verified access copies, the newest version of each profile."""
    rows = session.exec(
        select(Derivative)
        .where(
            col(Derivative.item_id).in_(item_ids),
            col(Derivative.kind).in_(ACCESS_KINDS),
            Derivative.status == DerivativeStatus.VERIFIED,
            col(Derivative.verified).is_(True),
        )
        .order_by(col(Derivative.profile), col(Derivative.profile_version).desc())
    ).all()
    newest: dict[tuple[str, str], Derivative] = {}
    for row in rows:
        newest.setdefault((row.item_id, row.profile), row)
    found: dict[str, list[Derivative]] = {}
    for (item_id, _profile), row in newest.items():
        found.setdefault(item_id, []).append(row)
    return found


def plan_package(
    items: Sequence[Item], copies: Mapping[str, list[Derivative]], target: Medium, *, margin: float
) -> list[list[PlannedItem]]:
    """The items (each with its access copies) spread over discs of ``target``; an item too large
    for it is refused."""
    return plan_discs([_planned(item, copies.get(item.id, [])) for item in items], target, margin=margin)


def _planned(item: Item, copies: list[Derivative]) -> PlannedItem:
    return PlannedItem(item_id=item.id, sizes=(item.size, *(c.size or 0 for c in copies)), order=_order(item))


def _order(item: Item) -> str:
    when = item.captured_at or item.created_at
    return f"{when.isoformat()}|{item.id}"
