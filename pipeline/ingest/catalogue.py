"""Cataloguing: record a copied batch in the catalog in one transaction. Each sighting this worker
still holds ends as deferred (its source changed while being copied, or the store could not take
it), failed, stored (a new item, with its pending stages) or a duplicate of an item already kept,
with its custody event and the planned destination of its source."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row, update
from sqlalchemy import select as select_columns  # SQLModel's select takes at most four columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pipeline.catalog.db import insert_rows, session_scope
from pipeline.catalog.models import Disposition, Item, Sighting, SightingStatus, StageRun, StageStatus, new_id
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.ingest.context import IntakeContext, IntakeResult, Work
from pipeline.ingest.disposal import planned_destination
from pipeline.ingest.kinds import guess_kind
from pipeline.stage.names import readable
from pipeline.storage.base import StoredObject

# Stages every new item goes through after intake; each records its own status (StageRun).
NEXT_STAGES = ("probe", "derive")


@dataclass
class _Transaction:
    """One batch's catalog transaction: its session and custody log, and the items it has met."""

    session: Session
    ctx: IntakeContext
    log: CustodyLog
    worker: str
    now: datetime
    items: dict[str, Item]  # already in the catalog, by SHA-256
    new_items: dict[str, dict[str, object]] = field(default_factory=dict)  # to be inserted, by SHA-256


def catalogue(ctx: IntakeContext, batch: list[Work], worker: str) -> None:
    """Record the batch's outcomes; sets ``work.result`` for every sighting this worker still holds
    (``None`` for one taken over by another worker, which reports it)."""
    for attempt in range(3):
        try:
            with session_scope(ctx.engine) as session:
                _catalogue_in(session, ctx, batch, worker)
            return
        except IntegrityError:
            # Another worker catalogued the same content at the same moment: now it is a duplicate.
            if attempt == 2:
                raise


def _catalogue_in(session: Session, ctx: IntakeContext, batch: list[Work], worker: str) -> None:
    now = utcnow()
    sightings = _locked_sightings(session, [work.id for work in batch])
    digests = [work.stored.sha256 for work in batch if work.stored]
    items = {i.sha256: i for i in session.exec(select(Item).where(col(Item.sha256).in_(digests))).all()}
    changes: list[dict[str, object]] = []
    with CustodyLog(session, ctx.actor) as log:
        tx = _Transaction(session, ctx, log, worker, now, items)
        for work in batch:
            sighting = sightings.get(work.id)
            if sighting is None or sighting.lease_owner != worker or sighting.status != SightingStatus.PENDING:
                work.result = None  # taken over by another worker; it reports the outcome
                continue
            size = work.size or sighting.size
            change: dict[str, object] = {
                "id": work.id,
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
                "size": size,
                "mtime_ns": work.mtime_ns or sighting.mtime_ns,
            }
            changes.append(change)
            result = IntakeResult(
                work.id, work.shown, work.dock, SightingStatus.PENDING, size=size, disposition=Disposition.PENDING
            )
            if work.changed:
                work.result = _deferred_changed(tx, work, change, result)
            elif work.system is not None:
                work.result = _deferred_store_fault(tx, work, work.system, change, result)
            elif work.failure is not None or work.stored is None:
                work.result = _failed(tx, work, change, result)
            else:
                work.result = _stored_or_duplicate(tx, work, work.stored, sighting.received_at, change, result)
        if tx.new_items:
            _insert_items(session, list(tx.new_items.values()), now, ctx.tool)
        if changes:
            session.execute(update(Sighting), changes)


def _locked_sightings(session: Session, ids: list[str]) -> dict[str, Row[Any]]:
    """The batch's sightings, locked for this transaction, by ID (only the columns cataloguing reads)."""
    return {
        row.id: row
        for row in session.execute(
            select_columns(
                col(Sighting.id),
                col(Sighting.lease_owner),
                col(Sighting.status),
                col(Sighting.size),
                col(Sighting.mtime_ns),
                col(Sighting.received_at),
            )
            .where(col(Sighting.id).in_(ids))
            .with_for_update()
        ).all()
    }


def _deferred_changed(tx: _Transaction, work: Work, change: dict[str, object], result: IntakeResult) -> IntakeResult:
    """The source changed while it was copied: pending still, taken in again once it is quiet."""
    error = "changed while being copied; will be taken in again once complete"
    change.update(queued_at=None, error=error)  # the reconciler requeues it once quiet
    tx.log.record("intake-deferred", f"sighting:{work.id}", {"path": work.shown, "reason": error}, tool=tx.ctx.tool)
    return replace(result, error=error)


def _deferred_store_fault(
    tx: _Transaction, work: Work, reason: str, change: dict[str, object], result: IntakeResult
) -> IntakeResult:
    """The store could not take the file: the source stays where it is and is tried again."""
    # Pending still, the lease given up: the reconciler (or the next `ingest`) retries.
    change["error"] = reason
    tx.log.record("intake-deferred", f"sighting:{work.id}", {"path": work.shown, "reason": reason}, tool=tx.ctx.tool)
    return replace(result, status=SightingStatus.FAILED, error=reason, disposition=Disposition.KEPT)


def _failed(tx: _Transaction, work: Work, change: dict[str, object], result: IntakeResult) -> IntakeResult:
    """The file's fault (or a defect): failed, its source planned for quarantine when it is still there."""
    error = work.failure or "not stored"
    work.disposed_to = planned_destination(tx.ctx, work, quarantine=True) if work.quarantine else None
    disposition = Disposition.PENDING
    if work.disposed_to is None:
        disposition = Disposition.KEPT if os.path.lexists(work.path) else Disposition.GONE
        change["active_key"] = None
    shown_to = readable(work.disposed_to) if work.disposed_to else None
    change.update(
        status=SightingStatus.FAILED,
        error=error,
        disposition=disposition,
        disposed_path=shown_to,
        disposed_path_raw=work.disposed_to,
    )
    tx.log.record(
        "intake-failed",
        f"sighting:{work.id}",
        {"path": work.shown, "dock": work.dock, "reason": error},
        tool=tx.ctx.tool,
    )
    return replace(result, status=SightingStatus.FAILED, error=error, disposition=disposition, disposed_path=shown_to)


def _stored_or_duplicate(
    tx: _Transaction,
    work: Work,
    stored: StoredObject,
    received_at: datetime,
    change: dict[str, object],
    result: IntakeResult,
) -> IntakeResult:
    """Stored: a new item (or a duplicate of one already kept), its source planned for processed/."""
    existing = tx.items.get(stored.sha256)
    if existing is None and stored.sha256 not in tx.new_items:
        item_id = _new_item(tx, work, stored, received_at)
        status = SightingStatus.STORED
    else:
        item_id = str(existing.id if existing else tx.new_items[stored.sha256]["id"])
        if existing is not None and set(stored.digests) - set(existing.digests):
            existing.digests = {**stored.digests, **existing.digests}
            tx.session.add(existing)
        status = SightingStatus.DUPLICATE
        tx.log.record(
            "duplicate-received",
            f"item:{item_id}",
            {"sha256": stored.sha256, "dock": work.dock, "source": work.shown, "sighting": work.id},
            tool=tx.ctx.tool,
        )
    work.disposed_to = planned_destination(tx.ctx, work, quarantine=False)
    disposition = Disposition.PENDING
    if work.disposed_to is None and work.policy == "keep":
        disposition = Disposition.KEPT
        change["active_key"] = None
    shown_to = readable(work.disposed_to) if work.disposed_to else None
    change.update(
        status=status,
        item_id=item_id,
        error=None,
        disposition=disposition,
        disposed_path=shown_to,
        disposed_path_raw=work.disposed_to,
    )
    return replace(
        result,
        status=status,
        item=item_id,
        sha256=stored.sha256,
        size=stored.size,
        disposition=disposition,
        disposed_path=shown_to,
    )


def _new_item(tx: _Transaction, work: Work, stored: StoredObject, received_at: datetime) -> str:
    """Add the item row for content not yet in the catalog, with its "ingested" event; returns its ID."""
    item_id = new_id()
    name = readable(work.name)
    tx.new_items[stored.sha256] = {
        "id": item_id,
        "sha256": stored.sha256,
        "size": stored.size,
        "digests": dict(stored.digests),
        "original_name": name,
        "original_name_raw": work.name,
        "media_kind": guess_kind(name, stored.head),
        "dock_id": work.dock,
        "status": "stored",
        "created_at": tx.now,
        "received_at": received_at,  # when it reached the platform: the deadline's yardstick
        "fixity_status": None,
        "fixity_checked_at": None,
    }
    tx.log.record(
        "ingested",
        f"item:{item_id}",
        {
            "sha256": stored.sha256,
            "size": stored.size,
            "digests": stored.digests,
            "original_name": name,
            "dock": work.dock,
            "source": work.shown,
            "sighting": work.id,
            "store": tx.ctx.store.name,
            "key": stored.key,
            "verified": "read back and compared while copying",
            "worker": tx.worker,
            **({"store_repaired": True} if stored.repaired else {}),
        },
        tool=tx.ctx.tool,
    )
    return item_id


def _insert_items(session: Session, rows: list[dict[str, object]], now: datetime, tool: str) -> None:
    """Insert the new items, each with intake done and the next stages pending."""
    insert_rows(session, Item, rows)
    insert_rows(
        session,
        StageRun,
        [
            {
                "item_id": row["id"],
                "stage": stage,
                "status": status,
                "attempts": int(status == StageStatus.DONE),
                "error": None,
                "tool": tool if status == StageStatus.DONE else None,
                "updated_at": now,
            }
            for row in rows
            for stage, status in (
                ("intake", StageStatus.DONE),
                *((name, StageStatus.PENDING) for name in NEXT_STAGES),
            )
        ],
    )
