"""Reads of the catalog that every interface needs, as plain functions of a session: the command
line and the web application call these instead of writing their own queries."""

from __future__ import annotations

from sqlmodel import Session, col, func, or_, select

from pipeline.catalog.models import Item, StageRun
from pipeline.errors import NotFoundError

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
