"""One item's whole record, as a person looking at it sees it: fields, facts with their sources,
deadline, issues, arrivals, stages, derivatives, stored copies (replicas), discs and custody history.
Looking is a retrieval, so :func:`item_detail` records it in the custody log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from pipeline.catalog.access import RETRIEVALS, retrieval_terms
from pipeline.catalog.models import (
    REQUIRED_FACTS,
    Case,
    Derivative,
    FixityOutcome,
    Item,
    ItemFact,
    ItemIssue,
    Package,
    PackageFile,
    Sighting,
    StageRun,
)
from pipeline.catalog.people import Role
from pipeline.catalog.queries.items import ItemSummary, locate_item
from pipeline.catalog.replicas import Replica, ReplicaStatus
from pipeline.catalog.types import iso
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog, events_for
from pipeline.storage.base import ObjectStore


@dataclass(frozen=True)
class SightingView:
    """One arrival of the item's content at a dock, and what became of the dock's file."""

    id: str
    dock: str
    path: str
    size: int
    status: str
    received_at: datetime
    disposition: str
    disposed_path: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "dock": self.dock,
            "path": self.path,
            "size": self.size,
            "status": self.status,
            "received_at": self.received_at.isoformat(),
            "disposition": self.disposition,
            "disposed_path": self.disposed_path,
        }


@dataclass(frozen=True)
class FactView:
    """A required fact's value in force and where it came from (None when it is missing)."""

    value: object
    source: str | None

    def as_json(self) -> dict[str, object]:
        return {"value": self.value, "source": self.source}


@dataclass(frozen=True)
class FactCandidate:
    """One value a source gave for a field; ``chosen`` marks the one in force, ``reason`` why."""

    field: str
    value: object
    source: str
    chosen: bool
    reason: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "field": self.field,
            "value": self.value,
            "source": self.source,
            "chosen": self.chosen,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class IssueView:
    code: str
    message: str

    def as_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ReplicaView:
    """One stored copy of the original: its store (``local``, ``s3``), key, when it was last
    verified and what that found (``ok``, ``bad``, ``missing``)."""

    store: str
    key: str
    verified_at: datetime
    status: str

    def as_json(self) -> dict[str, object]:
        return {"store": self.store, "key": self.key, "verified_at": iso(self.verified_at), "status": self.status}


@dataclass(frozen=True)
class DerivativeView:
    """A copy made from the original, with its profile (``name@version``) and verification."""

    kind: str
    profile: str
    status: str
    sha256: str | None
    size: int | None
    verified: bool
    progress: float
    verification: object  # the method the copy was verified with
    error: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "profile": self.profile,
            "status": self.status,
            "sha256": self.sha256,
            "size": self.size,
            "verified": self.verified,
            "progress": self.progress,
            "verification": self.verification,
            "error": self.error,
        }


@dataclass(frozen=True)
class DiscPlacement:
    """Where the original is on a disc of a package."""

    package: str
    disc: int
    path: str
    status: str

    def as_json(self) -> dict[str, object]:
        return {"package": self.package, "disc": self.disc, "path": self.path, "status": self.status}


@dataclass(frozen=True)
class EventView:
    """One custody event about the item."""

    seq: int
    at: datetime
    actor: str
    action: str
    details: dict[str, Any]

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "details": self.details,
        }


@dataclass(frozen=True)
class CaseRef:
    number: str
    target: str | None
    classification: str

    def as_json(self) -> dict[str, object]:
        return {"number": self.number, "target": self.target, "classification": self.classification}


@dataclass(frozen=True)
class ItemDetail:
    """Everything the catalog holds about one item."""

    summary: ItemSummary
    sightings: tuple[SightingView, ...]
    stages: dict[str, str]
    facts: dict[str, FactView]
    capture_tz: str | None
    case: CaseRef | None
    issues: tuple[IssueView, ...]
    received_at: datetime | None
    deadline: datetime | None
    deadline_provisional: bool
    review_status: str
    item_classification: str
    media: dict[str, object]
    candidates: tuple[FactCandidate, ...]
    derivatives: tuple[DerivativeView, ...]
    packages: tuple[DiscPlacement, ...]
    store_key: str
    replicas: tuple[ReplicaView, ...]
    events: tuple[EventView, ...]

    def as_json(self) -> dict[str, Any]:
        # The summary's keys first (``late``, ``working_days_late``, ``classification`` as it applies
        # and ``withheld`` among them), then the rest.
        return {
            **self.summary.as_json(),
            "sightings": [s.as_json() for s in self.sightings],
            "stages": dict(self.stages),
            "facts": {name: fact.as_json() for name, fact in self.facts.items()},
            "capture_tz": self.capture_tz,
            "case": self.case.as_json() if self.case else None,
            "issues": [i.as_json() for i in self.issues],
            "received_at": iso(self.received_at),
            "deadline": iso(self.deadline),
            "deadline_provisional": self.deadline_provisional,
            "review_status": self.review_status,
            "item_classification": self.item_classification,
            "media": self.media,
            "candidates": [c.as_json() for c in self.candidates],
            "derivatives": [d.as_json() for d in self.derivatives],
            "packages": [p.as_json() for p in self.packages],
            "store_key": self.store_key,
            "replicas": [r.as_json() for r in self.replicas],
            "events": [e.as_json() for e in self.events],
        }


def item_detail(
    session: Session,
    *,
    ident: str,
    viewer: Viewer,
    via: str,
    store: ObjectStore,
    tool: str,
    purpose: str | None = None,
) -> ItemDetail:
    """The item ``ident`` names (see :func:`locate_item`) with its whole record, as ``viewer`` may
    see it. The view is recorded as a ``viewed`` custody event by the viewer, with the interface
    (``via``: ``cli``, ``web``), the client and the purpose, before the history is read, so the
    history ends with it (the retrieval history is shown to auditors only).

    A ``trade-secret`` or ``state-secret`` item needs an approved, unexpired access request for it
    or its case (its use is recorded as ``access-used``); a ``privacy`` item needs a ``purpose``,
    stated once per item and web session (a purpose given is kept for the session). The server's
    own authority needs neither.

    Raises :class:`NotFoundError` (or :class:`AmbiguousError`) when ``ident`` names no single item
    the viewer may know exists, :class:`WithheldError` without a grant and
    :class:`PurposeRequiredError` without a purpose; nothing is recorded then.
    """
    located = locate_item(session, ident, viewer=viewer)
    found = located.item
    terms = retrieval_terms(session, viewer, found, located.classification, purpose)
    stated, grant = terms.purpose, terms.grant
    details: dict[str, object] = {"via": via, "client": viewer.client}
    if stated:
        details["purpose"] = stated
    with CustodyLog(session, viewer.name) as log:
        if grant is not None:
            log.record(
                "access-used", f"item:{found.id}", {**details, "request": grant.id, "purpose": grant.purpose}, tool=tool
            )
        log.record("viewed", f"item:{found.id}", details, tool=tool)
    facts = session.exec(select(ItemFact).where(ItemFact.item_id == found.id).order_by(col(ItemFact.id))).all()
    case = session.get(Case, found.case_number) if found.case_number else None
    issues = session.exec(select(ItemIssue).where(ItemIssue.item_id == found.id).order_by(col(ItemIssue.id))).all()
    history = events_for(session, f"item:{found.id}")
    if not viewer.has(Role.AUDITOR, Role.ADMIN):
        history = [e for e in history if e.action not in RETRIEVALS]
    return ItemDetail(
        summary=ItemSummary.of(found, classification=located.classification),
        sightings=_sightings(session, found.id),
        stages={s.stage: s.status for s in session.exec(select(StageRun).where(StageRun.item_id == found.id))},
        facts=_facts_in_force(found, facts),
        capture_tz=found.capture_tz,
        case=CaseRef(case.number, case.target, case.classification) if case else None,
        issues=tuple(IssueView(i.code, i.message) for i in issues),
        received_at=found.received_at,
        deadline=found.deadline,
        deadline_provisional=found.deadline_provisional,
        review_status=found.review_status,
        item_classification=found.classification,
        media=found.media,
        candidates=tuple(FactCandidate(f.field, f.value, f.source, f.chosen, f.reason) for f in facts),
        derivatives=_derivatives(session, found.id),
        packages=_placements(session, found.id),
        store_key=store.key(found.sha256),
        replicas=_replicas(session, found, store),
        events=tuple(
            EventView(seq=e.seq or 0, at=e.at, actor=e.actor, action=e.action, details=json.loads(e.details))
            for e in history
        ),
    )


def _sightings(session: Session, item_id: str) -> tuple[SightingView, ...]:
    query = select(Sighting).where(Sighting.item_id == item_id).order_by(col(Sighting.received_at))
    return tuple(
        SightingView(
            id=s.id,
            dock=s.dock_id,
            path=s.source_path,
            size=s.size,
            status=s.status,
            received_at=s.received_at,
            disposition=s.disposition,
            disposed_path=s.disposed_path,
        )
        for s in session.exec(query)
    )


def _facts_in_force(item: Item, facts: Sequence[ItemFact]) -> dict[str, FactView]:
    """The required facts, each with the source of the candidate chosen for it."""
    sources = {f.field: f.source for f in facts if f.chosen}
    values: dict[str, object] = {name: getattr(item, name) for name in REQUIRED_FACTS}
    values["captured_at"] = iso(item.captured_at)
    return {name: FactView(values[name], sources.get(name)) for name in REQUIRED_FACTS}


def _derivatives(session: Session, item_id: str) -> tuple[DerivativeView, ...]:
    query = select(Derivative).where(Derivative.item_id == item_id).order_by(col(Derivative.created_at))
    return tuple(
        DerivativeView(
            kind=d.kind,
            profile=f"{d.profile}@{d.profile_version}",
            status=d.status,
            sha256=d.sha256,
            size=d.size,
            verified=d.verified,
            progress=d.progress,
            verification=d.verification.get("method"),
            error=d.error,
        )
        for d in session.exec(query)
    )


def _placements(session: Session, item_id: str) -> tuple[DiscPlacement, ...]:
    query = (
        select(PackageFile, Package)
        .join(Package, col(Package.id) == PackageFile.package_id)
        .where(PackageFile.item_id == item_id, PackageFile.role == "original")
        .order_by(col(PackageFile.id))
    )
    return tuple(DiscPlacement(f.package_id, f.disc_index, f.disc_path, p.status) for f, p in session.exec(query))


# What a fixity check found (``Item.fixity_status``) as the state of the copy it checked.
_FIXITY_REPLICA: dict[str, ReplicaStatus] = {
    FixityOutcome.OK: ReplicaStatus.OK,
    FixityOutcome.MISMATCH: ReplicaStatus.BAD,
    FixityOutcome.MISSING: ReplicaStatus.MISSING,
}


def _replicas(session: Session, item: Item, store: ObjectStore) -> tuple[ReplicaView, ...]:
    """The item's stored copies: the one intake made in ``store`` (as the item row records its
    verification: intake's read-back, then each fixity check) unless a row records that store's
    copy, and every copy recorded in ``Replica``."""
    rows = session.exec(select(Replica).where(Replica.item_id == item.id).order_by(col(Replica.id))).all()
    views = [ReplicaView(r.store, r.key, r.verified_at, r.status) for r in rows]
    if all(r.store != store.name for r in rows):
        found = _FIXITY_REPLICA.get(item.fixity_status or "")
        if item.fixity_checked_at is not None and found is not None:
            at, status = item.fixity_checked_at, found
        else:  # never checked (or the check itself failed): as intake verified it
            at, status = item.created_at, ReplicaStatus.OK
        views.insert(0, ReplicaView(store.name, store.key(item.sha256), at, status))
    return tuple(views)
