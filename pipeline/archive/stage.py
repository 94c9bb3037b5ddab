"""The archive stage: copy an item's original from the local store to the S3 store, where it is
sent with the SHA-256 of each part, read back and compared before it counts (``S3Store.put``),
and locked; then record the copy (``Replica``, store ``s3``) and a ``replicated`` custody event.

Idempotent: an item whose S3 copy the catalog records as verified is skipped (``already``), and an
object the S3 store holds already (a run that stopped before its catalog row) is verified there and
not sent again. The error policy: the S3 store unreachable or failing (a system fault) leaves the
item's stage pending with the reason, for the next run (``evidence archive --all-pending``, the
reconciler) to try again; a local copy that does not match its recorded SHA-256 fails the stage
(fixity says more; nothing is sent); a defect is recorded on the item as ``stage-error``. Only a
lost catalog (:class:`TransientError`) is raised, for the whole batch to be retried.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Item, StageRun, StageStatus
from pipeline.catalog.replicas import Replica, ReplicaStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import DigestMismatch, SystemFault, TransientError, describe
from pipeline.stage import StageContext, issues, stored_original
from pipeline.stage.status import record_stage_error, set_stage, stage_pending
from pipeline.storage.base import ObjectStore, StoredObject
from pipeline.storage.local import LocalStore

STAGE = "archive"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ArchiveContext(StageContext[LocalStore]):
    """The local store originals are read from (``store``) and the store they are replicated to."""

    replica: ObjectStore


@dataclass(frozen=True)
class ArchiveResult:
    item: str
    status: str  # replicated | already | failed | missing
    store: str
    key: str | None = None
    error: str | None = None
    system: bool = False  # failed for a system fault (the S3 store away): tried again later

    def as_json(self) -> dict[str, object]:
        return {"item": self.item, "status": self.status, "store": self.store, "key": self.key, "error": self.error}


def items_to_archive(
    session: Session, store: str = "s3", *, limit: int | None = None, exclude: SelectOfScalar[str] | None = None
) -> list[str]:
    """Items without a verified copy in ``store`` whose archive stage has not failed (a failed one
    waits for a person to retry it by ID), nor among ``exclude``, oldest first."""
    verified = select(Replica.item_id).where(Replica.store == store, Replica.status == ReplicaStatus.OK)
    failed = select(StageRun.item_id).where(StageRun.stage == STAGE, StageRun.status == StageStatus.FAILED)
    query = select(Item.id).where(col(Item.id).not_in(verified), col(Item.id).not_in(failed))
    if exclude is not None:
        query = query.where(col(Item.id).not_in(exclude))
    query = query.order_by(col(Item.created_at), col(Item.id))
    if limit:
        query = query.limit(limit)
    return list(session.exec(query).all())


def queue_archive(engine: Engine, item_ids: Sequence[str]) -> None:
    """Mark these items' archive stage pending (queued now), as a worker's task for them expects."""
    if not item_ids:
        return
    with session_scope(engine) as session:
        runs = {
            run.item_id: run
            for run in session.exec(
                select(StageRun).where(StageRun.stage == STAGE, col(StageRun.item_id).in_(list(item_ids)))
            ).all()
        }
        now = utcnow()
        for item_id in dict.fromkeys(item_ids):
            run = runs.get(item_id) or StageRun(item_id=item_id, stage=STAGE, status=StageStatus.PENDING)
            if run.status != StageStatus.FAILED:
                run.status, run.updated_at = StageStatus.PENDING, now
                session.add(run)


def due_archive(engine: Engine, store: str = "s3", *, stale_after: float, limit: int = 500) -> list[str]:
    """The items the reconciler queues for archiving: without a verified copy in ``store``, their
    archive stage not failed nor queued within ``stale_after`` seconds; marked queued."""
    with session_scope(engine) as session:
        recent = select(StageRun.item_id).where(
            StageRun.stage == STAGE,
            StageRun.status == StageStatus.PENDING,
            col(StageRun.updated_at) > utcnow() - timedelta(seconds=stale_after),
        )
        ids = items_to_archive(session, store, limit=limit, exclude=recent)
    queue_archive(engine, ids)
    return ids


def archive_pending(ctx: ArchiveContext, item_ids: Sequence[str]) -> list[ArchiveResult]:
    """A queued batch: the items whose archive stage is still pending (a repeated message finds
    the others done or failed, and skips them)."""
    return archive(ctx, [item_id for item_id in dict.fromkeys(item_ids) if stage_pending(ctx.engine, STAGE, item_id)])


def archive(ctx: ArchiveContext, item_ids: Sequence[str]) -> list[ArchiveResult]:
    """Replicate each item's original; one item's content or defect never stops the others. After
    a system fault (the S3 store away, once its retries are spent) the items still to do are not
    tried in this call (each would wait through the same retries): they stay pending, with the
    reason, for the next run."""
    results = []
    name = ctx.replica.name
    fault: str | None = None
    for item_id in dict.fromkeys(item_ids):
        if fault is not None:
            _postpone(ctx, item_id, fault)
            results.append(ArchiveResult(item_id, "failed", name, error=f"not tried: {fault}", system=True))
            continue
        try:
            results.append(_archive_one(ctx, item_id))
        except TransientError:
            raise
        except SystemFault as exc:
            error = describe(exc)
            logger.warning("archive of item %s to %s postponed: %s", item_id, name, error)
            _postpone(ctx, item_id, error)
            results.append(ArchiveResult(item_id, "failed", name, error=error, system=True))
            fault = error
        except DigestMismatch as exc:
            error = (
                f"the local copy does not match the item's SHA-256 ({describe(exc)}); run `evidence fixity {item_id}`"
            )
            with session_scope(ctx.engine) as session:
                set_stage(session, item_id, STAGE, StageStatus.FAILED, error=error, tool=ctx.tool)
            results.append(ArchiveResult(item_id, "failed", name, error=error))
        except Exception as exc:
            error = record_stage_error(ctx.engine, ctx.actor, item_id, STAGE, exc, tool=ctx.tool)
            results.append(ArchiveResult(item_id, "failed", name, error=f"{issues.STAGE_ERROR}: {error}"))
    return results


def _archive_one(ctx: ArchiveContext, item_id: str) -> ArchiveResult:
    name = ctx.replica.name
    with session_scope(ctx.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            return ArchiveResult(item_id, "missing", name, error=f"no item {item_id}")
        sha256, size = item.sha256, item.size
        key = ctx.replica.key(sha256)
        known = _replica(session, item_id, name)
        if known is not None and known.status == ReplicaStatus.OK and known.key == key:
            _mark_done(session, item_id, ctx.tool)
            return ArchiveResult(item_id, "already", name, key)
    path = stored_original(ctx.store, sha256, item_id)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        stored = ctx.replica.put(fd, expect_sha256=sha256)
    finally:
        os.close(fd)
    if stored.size != size:
        raise DigestMismatch("source", f"{stored.size:,} bytes, not the {size:,} recorded")
    _record(ctx, item_id, stored)
    return ArchiveResult(item_id, "already" if stored.existed else "replicated", name, stored.key)


def _replica(session: Session, item_id: str, store: str) -> Replica | None:
    return session.exec(select(Replica).where(Replica.item_id == item_id, Replica.store == store)).first()


def _mark_done(session: Session, item_id: str, tool: str) -> None:
    status = session.exec(select(StageRun.status).where(StageRun.item_id == item_id, StageRun.stage == STAGE)).first()
    if status != StageStatus.DONE:
        set_stage(session, item_id, STAGE, StageStatus.DONE, tool=tool)


def _record(ctx: ArchiveContext, item_id: str, stored: StoredObject) -> None:
    """The verified copy in the catalog, its stage done, and a ``replicated`` custody event."""
    name = ctx.replica.name
    with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
        # Locked first: two runs on one item (a repeated message) record its copy in turn.
        session.get(Item, item_id, with_for_update=True)
        replica = _replica(session, item_id, name) or Replica(item_id=item_id, store=name, key=stored.key, size=0)
        replica.key, replica.size, replica.verified_at, replica.status = (
            stored.key,
            stored.size,
            utcnow(),
            ReplicaStatus.OK,
        )
        session.add(replica)
        set_stage(session, item_id, STAGE, StageStatus.DONE, tool=ctx.tool)
        log.record(
            "replicated",
            f"item:{item_id}",
            {
                "store": name,
                "key": stored.key,
                "sha256": stored.sha256,
                "size": stored.size,
                "sent": not stored.existed,
            },
            tool=ctx.tool,
        )


def _postpone(ctx: ArchiveContext, item_id: str, error: str) -> None:
    """After a system fault: the stage stays pending, with the reason, for the next run."""
    try:
        with session_scope(ctx.engine) as session:
            if session.get(Item, item_id) is not None:
                set_stage(session, item_id, STAGE, StageStatus.PENDING, error=error, tool=ctx.tool)
    except TransientError:
        logger.warning("could not record the postponed archive of item %s", item_id)
