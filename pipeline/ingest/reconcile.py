"""The reconciler: the catalog, not the broker, decides what still needs doing.

Run at start-up and periodically. It finds sightings whose intake never started (message lost),
whose worker died (lease ran out), or whose source still waits to be moved, and hands them back to
the queue. Messages repeated this way are harmless: intake is idempotent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine, and_, or_
from sqlmodel import col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Disposition, Sighting, SightingStatus, StageRun, StageStatus
from pipeline.catalog.types import utcnow
from pipeline.fixity import schedule_fixity
from pipeline.ingest.intake import IntakeContext, mark_queued
from pipeline.ingest.uploads import sweep_uploads, upload_context
from pipeline.package.stage import stale_packages
from pipeline.settings import Settings
from pipeline.stage.status import touch_stage

Enqueue = Callable[[Sequence[str]], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    requeued: int
    partials_removed: int
    uploads_expired: int = 0


def due_sightings(
    engine: Engine, *, stale_after: float, quiet_period: float, lease_seconds: float, limit: int = 5000
) -> list[str]:
    """Sightings to hand to a worker again:

    - pending and leased, but the lease ran out: the worker died mid-copy;
    - pending, never leased, and queued long ago or never: the message was lost;
    - catalogued, but the source still waits to be moved or deleted: cut short after the commit.
    """
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    grace = now - timedelta(seconds=lease_seconds)
    pending = col(Sighting.status) == SightingStatus.PENDING
    with session_scope(engine) as session:
        rows = session.exec(
            select(Sighting)
            .where(
                or_(
                    and_(
                        pending,
                        col(Sighting.lease_until).is_not(None),
                        col(Sighting.lease_until) <= now,
                        or_(
                            col(Sighting.queued_at).is_(None),
                            col(Sighting.queued_at) <= col(Sighting.lease_until),
                            col(Sighting.queued_at) <= stale,
                        ),
                    ),
                    and_(
                        pending,
                        col(Sighting.lease_until).is_(None),
                        or_(col(Sighting.queued_at).is_(None), col(Sighting.queued_at) <= stale),
                    ),
                    and_(
                        col(Sighting.status) != SightingStatus.PENDING,
                        col(Sighting.disposition) == Disposition.PENDING,
                        col(Sighting.updated_at) <= grace,
                    ),
                )
            )
            .order_by(col(Sighting.received_at))
            .limit(limit)
        ).all()
    due = []
    quiet_ns = quiet_period * 1e9
    for sighting in rows:
        if sighting.status == SightingStatus.PENDING:
            # A file that changed while being copied is retried only once it has been quiet again.
            try:
                mtime = os.lstat(sighting.source_path_raw).st_mtime_ns
            except OSError:
                mtime = 0
            if mtime and now.timestamp() * 1e9 - mtime < quiet_ns:
                continue
        due.append(sighting.id)
    return due


def due_stages(engine: Engine, stage: str, *, stale_after: float, limit: int = 5000) -> list[str]:
    """Items whose ``stage`` is still pending a while after it was last queued."""
    stale = utcnow() - timedelta(seconds=stale_after)
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(StageRun.item_id)
                .where(
                    StageRun.stage == stage, StageRun.status == StageStatus.PENDING, col(StageRun.updated_at) <= stale
                )
                .limit(limit)
            ).all()
        )


class StageQueue(Protocol):
    """Hands work to the stage queues; each method raises :class:`TransientError` when the broker
    cannot be reached (the work then stays due in the catalog)."""

    def intake(self, sighting_ids: Sequence[str]) -> None: ...
    def probe(self, item_ids: Sequence[str]) -> None: ...
    def derive(self, item_ids: Sequence[str]) -> None: ...
    def package(self, package_ids: Sequence[str]) -> None: ...
    def fixity(self, item_ids: Sequence[str]) -> None: ...


def reconcile(
    ctx: IntakeContext, enqueue: Enqueue, stages: Mapping[str, Enqueue] | None = None, *, batch: int = 64
) -> ReconcileReport:
    """Queue again what the catalog says is unfinished: intake of sightings, and the later stages
    (``stages`` maps a stage name to the function that queues it) of items."""
    due = due_sightings(
        ctx.engine, stale_after=ctx.stale_after, quiet_period=ctx.quiet_period, lease_seconds=ctx.lease_seconds
    )
    for start in range(0, len(due), batch):
        chunk = due[start : start + batch]
        enqueue(chunk)  # a broker outage raises here and the sightings stay due
        mark_queued(ctx.engine, chunk)
    requeued = len(due)
    for stage, enqueue_stage in (stages or {}).items():
        items = due_stages(ctx.engine, stage, stale_after=ctx.stale_after)
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            enqueue_stage(chunk)
            touch_stage(ctx.engine, stage, chunk)
        requeued += len(items)
    removed = ctx.store.remove_partials(older_than=max(ctx.lease_seconds * 2, 60.0))
    return ReconcileReport(requeued, removed)


def reconcile_all(ctx: IntakeContext, settings: Settings, queue: StageQueue) -> ReconcileReport:
    """One reconciler pass: queue again what a lost message or a dead worker left undone (intake,
    later stages, packages), queue the fixity checks that have come due, remove the incomplete
    uploads that lay idle past their expiry and take in those received in full but never taken in."""
    report = reconcile(ctx, queue.intake, {"probe": queue.probe, "derive": queue.derive, "fixity": queue.fixity})
    requeued = report.requeued
    if packages := stale_packages(ctx.engine, settings.stale_after):
        queue.package(packages)
        requeued += len(packages)
    if settings.fixity_interval_days > 0:
        every = timedelta(days=settings.fixity_interval_days)
        if due := schedule_fixity(ctx.engine, every=every, limit=settings.fixity_batch):
            queue.fixity(due)  # a lost message is sent again: the items stay pending
            requeued += len(due)
    swept = sweep_uploads(upload_context(ctx, settings, worker=ctx.actor))
    if swept.expired:
        logger.warning("removed %d upload(s) idle past their expiry: %s", len(swept.expired), ", ".join(swept.expired))
    if swept.finished:
        logger.info("took in %d upload(s) received in full earlier: %s", len(swept.finished), ", ".join(swept.finished))
    return ReconcileReport(requeued, report.partials_removed, len(swept.expired))
