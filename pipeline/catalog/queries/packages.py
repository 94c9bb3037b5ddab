"""Disc packages as recorded: who asked, when, for what, each disc's image and verification, and
which of a package's items lack facts the regulation requires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from pipeline.catalog.access import visible_items, visible_packages, withheld_items
from pipeline.catalog.models import REQUIRED_FACTS, Item, Package, PackageDisc
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.errors import NotFoundError


@dataclass(frozen=True)
class DiscSummary:
    """One image of a package, its hash and whether reading it back matched."""

    index: int
    label: str
    path: str
    size: int
    sha256: str
    verified: bool
    verified_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "label": self.label,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "verified": self.verified,
            "verified_at": iso(self.verified_at),
        }


@dataclass(frozen=True)
class PackageSummary:
    """A package request and how it went."""

    id: str
    case_number: str
    status: str
    requested_by: str
    requested_at: datetime
    purpose: str | None
    producer: str
    produced_at: datetime | None
    media: str
    items: tuple[str, ...]
    with_access_copies: bool
    error: str | None
    discs: tuple[DiscSummary, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "package": self.id,
            "case": self.case_number,
            "status": self.status,
            "requested_by": self.requested_by,
            "requested_at": iso(self.requested_at),
            "purpose": self.purpose,
            "producer": self.producer,
            "produced_at": iso(self.produced_at),
            "media": self.media,
            "items": list(self.items),
            "with_access_copies": self.with_access_copies,
            "error": self.error,
            "discs": [disc.as_json() for disc in self.discs],
        }


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def list_packages(session: Session, *, viewer: Viewer, case_number: str | None = None) -> list[PackageSummary]:
    """The packages asked for that the viewer may know exist (every item in them is visible to the
    viewer), of one case when given, in the order they were asked for."""
    query = (
        select(Package)
        .where(visible_packages(viewer, _dialect(session)))
        .order_by(col(Package.requested_at), col(Package.id))
    )
    if case_number:
        query = query.where(Package.case_number == case_number)
    found = []
    for package in session.exec(query).all():
        discs = session.exec(
            select(PackageDisc).where(PackageDisc.package_id == package.id).order_by(col(PackageDisc.disc_index))
        ).all()
        found.append(
            PackageSummary(
                id=package.id,
                case_number=package.case_number,
                status=package.status,
                requested_by=package.requested_by,
                requested_at=package.requested_at,
                purpose=package.purpose,
                producer=package.producer,
                produced_at=package.produced_at,
                media=package.media,
                items=tuple(package.item_ids),
                with_access_copies=package.with_access_copies,
                error=package.error,
                discs=tuple(
                    DiscSummary(d.disc_index, d.label, d.path, d.size, d.sha256, d.verified, d.verified_at)
                    for d in discs
                ),
            )
        )
    return found


@dataclass(frozen=True)
class IncompleteItem:
    """An item of a package lacking facts the regulation requires, and which."""

    item: str
    missing: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"item": self.item, "missing": list(self.missing)}


def incomplete_items(session: Session, *, package_id: str, viewer: Viewer) -> list[IncompleteItem]:
    """The items of a package that lack any of the required facts, in ID order; its description says
    "not recorded" for them. Items withheld from the viewer are left out (which facts they lack is a
    fact about them). :class:`NotFoundError` when there is no such package the viewer may know exists."""
    package = session.exec(
        select(Package).where(Package.id == package_id, visible_packages(viewer, _dialect(session)))
    ).first()
    if package is None:
        raise NotFoundError(f"no package {package_id!r}")
    items = session.exec(
        select(Item)
        .where(col(Item.id).in_(package.item_ids), visible_items(viewer), ~withheld_items(viewer))
        .order_by(col(Item.id))
    ).all()
    return [
        IncompleteItem(item.id, missing)
        for item in items
        if (missing := tuple(field for field in REQUIRED_FACTS if getattr(item, field) in (None, "")))
    ]
