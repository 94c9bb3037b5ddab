"""Asking for a case's items on disc: which items (all of the case's, or chosen ones of it), their
access copies, and whether each fits the medium. A request that cannot be met is refused before
anything is recorded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlmodel import Session, col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Derivative, DerivativeStatus, Item, Package
from pipeline.custody import CustodyLog
from pipeline.errors import NotFoundError
from pipeline.package.context import PackageContext
from pipeline.package.errors import PackageError
from pipeline.package.media import Medium, medium
from pipeline.package.plan import PlannedItem, plan_discs

ACCESS_KINDS = ("video-access", "audio-access", "image-access")


def request_package(
    ctx: PackageContext,
    *,
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
    """
    target = medium(media, margin=ctx.margin, capacity=capacity)
    with session_scope(ctx.engine) as session:
        items = select_items(session, case_number, item_ids)
        copies = access_copies(session, [item.id for item in items]) if with_access_copies else {}
        plan_package(items, copies, target, margin=ctx.margin)
        package = Package(
            case_number=case_number,
            item_ids=[item.id for item in items],
            requested_by=ctx.actor,
            purpose=purpose,
            producer=producer or ctx.actor,
            media=media,
            capacity=target.capacity,
            with_access_copies=with_access_copies,
            out_dir=str((out_dir or ctx.packages_dir).absolute()),
        )
        session.add(package)
        with CustodyLog(session, ctx.actor) as log:
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
                },
            )
        return package.id


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
