"""Intake: copy each arrived file once into the store while hashing it, catalogue it, and only then
move or delete the source.

Every arrival is first a *sighting* row (written by the watcher or the ``ingest`` command; see
:mod:`pipeline.ingest.sightings`). Intake works on sighting IDs and is idempotent: a sighting that
is finished is reported as it is, one that another worker holds (its lease is alive) is left alone,
and one whose worker died (lease ran out) is taken over. The order of durable steps is what keeps
evidence safe:

1. the stored copy is written, read back and compared, and flushed to disk
   (:mod:`pipeline.ingest.copying`); an upload's file, the pipeline's own, is adopted by the store
   (read once, hashed, linked) instead of copied;
2. the item and the sighting are committed to the catalog, with their custody events, and the
   planned destination of the source is recorded (:mod:`pipeline.ingest.catalogue`);
3. the source is moved to ``processed/<dock>/`` (or deleted, or kept, by policy) and that is
   recorded (:mod:`pipeline.ingest.disposal`).

A crash between any two steps leaves a state the next attempt finishes without loss or duplication.
This module claims the sightings (takes their leases) and runs the three steps in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import FINAL_SIGHTING, Disposition, Item, Sighting, SightingStatus
from pipeline.catalog.types import utcnow
from pipeline.ingest.catalogue import catalogue
from pipeline.ingest.context import IntakeContext, IntakeResult, Known, Work
from pipeline.ingest.copying import copy_one
from pipeline.ingest.disposal import dispose
from pipeline.ingest.sightings import Arrival, Opened, mark_queued, open_sightings

__all__ = [
    "Arrival",
    "IntakeContext",
    "IntakeResult",
    "Known",
    "Opened",
    "intake",
    "intake_leased",
    "mark_queued",
    "open_sightings",
]


def intake(
    ctx: IntakeContext, sighting_ids: Sequence[str], *, worker: str, known: Mapping[str, Known] | None = None
) -> list[IntakeResult]:
    """Take in the given sightings; returns one result per ID, in order. ``known`` holds what is
    known of a file already, by sighting ID: the SHA-256 its sender declared (a file that differs
    fails and is not stored), its digests as read back while it arrived."""
    claimed, finished, to_dispose = _claim(ctx, sighting_ids, worker)
    for work in claimed:
        work.known = (known or {}).get(work.id) or Known()
    return _take_in(ctx, sighting_ids, claimed, finished, to_dispose, worker)


# Copies the files of the works given into the store (``durable``: each flushed on its own) and
# returns the works with their results; by default one after the other in this process.
CopyAll = Callable[[list[Work], bool], list[Work]]


def intake_leased(
    ctx: IntakeContext,
    opened: Sequence[Opened],
    *,
    worker: str,
    known: Mapping[str, Known] | None = None,
    copy_all: CopyAll | None = None,
) -> list[IntakeResult]:
    """Take in sightings just opened with ``open_sightings(..., lease_to=worker)``: their lease is
    already this worker's, so there is nothing to claim. Returns one result per sighting, in order.
    ``copy_all`` may do the copies elsewhere (in worker processes); the catalog writes and the
    disposal of the sources stay here, in the order given."""
    claimed = [
        Work(o.id, o.raw, o.path, o.dock, o.policy, name=o.name or b"", known=(known or {}).get(o.id) or Known())
        for o in opened
    ]
    return _take_in(ctx, [o.id for o in opened], claimed, {}, [], worker, copy_all)


def _take_in(
    ctx: IntakeContext,
    sighting_ids: Sequence[str],
    claimed: list[Work],
    finished: dict[str, IntakeResult],
    to_dispose: list[Work],
    worker: str,
    copy_all: CopyAll | None = None,
) -> list[IntakeResult]:
    if claimed:
        durable = len(claimed) == 1
        if copy_all is not None:
            claimed = copy_all(claimed, durable)
        else:
            for work in claimed:
                copy_one(ctx, work, worker, durable=durable)
        if not durable and any(work.stored for work in claimed):
            ctx.store.sync()
        catalogue(ctx, claimed, worker)
        to_dispose.extend(work for work in claimed if work.result and work.result.status != SightingStatus.PENDING)
    dispose(ctx, to_dispose)
    by_id = {work.id: work.result for work in [*claimed, *to_dispose] if work.result}
    by_id.update(finished)
    return [
        by_id.get(sid) or IntakeResult(sid, "", "", "busy", error="taken over by another worker")
        for sid in sighting_ids
    ]


def _result_of(sighting: Sighting, item: Item | None) -> IntakeResult:
    return IntakeResult(
        sighting=sighting.id,
        path=sighting.source_path,
        dock=sighting.dock_id,
        status=sighting.status,
        item=sighting.item_id,
        sha256=item.sha256 if item else None,
        size=item.size if item else sighting.size,
        error=sighting.error,
        disposition=sighting.disposition,
        disposed_path=sighting.disposed_path,
    )


def _work_of(sighting: Sighting) -> Work:
    return Work(
        id=sighting.id,
        path=sighting.source_path_raw,
        shown=sighting.source_path,
        dock=sighting.dock_id,
        policy=sighting.source_policy,
        size=sighting.size,
        mtime_ns=sighting.mtime_ns,
        name=sighting.original_name_raw or b"",
    )


def _claim(
    ctx: IntakeContext, sighting_ids: Sequence[str], worker: str
) -> tuple[list[Work], dict[str, IntakeResult], list[Work]]:
    claimed: list[Work] = []
    finished: dict[str, IntakeResult] = {}
    to_dispose: list[Work] = []
    with session_scope(ctx.engine) as session:
        now = utcnow()
        until = now + timedelta(seconds=ctx.lease_seconds)
        leases: list[dict[str, object]] = []
        rows = session.exec(select(Sighting).where(col(Sighting.id).in_(sighting_ids)).with_for_update()).all()
        item_ids = [row.item_id for row in rows if row.item_id]
        items = {i.id: i for i in session.exec(select(Item).where(col(Item.id).in_(item_ids))).all()}
        for sighting in rows:
            item = items.get(sighting.item_id) if sighting.item_id else None
            if sighting.status in FINAL_SIGHTING and sighting.disposition != Disposition.PENDING:
                finished[sighting.id] = _result_of(sighting, item)
                continue
            if sighting.lease_until and sighting.lease_owner != worker and sighting.lease_until > now:
                finished[sighting.id] = IntakeResult(
                    sighting.id,
                    sighting.source_path,
                    sighting.dock_id,
                    "busy",
                    error=f"being taken in by {sighting.lease_owner}",
                )
                continue
            leases.append(
                {
                    "id": sighting.id,
                    "lease_owner": worker,
                    "lease_until": until,
                    "attempts": sighting.attempts + 1,
                    "updated_at": now,
                }
            )
            work = _work_of(sighting)
            if sighting.status in FINAL_SIGHTING:  # catalogued; only the source is left to dispose of
                work.result = _result_of(sighting, item)
                work.disposed_to = sighting.disposed_path_raw
                to_dispose.append(work)
            else:
                claimed.append(work)
        if leases:
            session.execute(update(Sighting), leases)
    missing = set(sighting_ids) - {w.id for w in claimed} - set(finished) - {w.id for w in to_dispose}
    for sid in missing:
        finished[sid] = IntakeResult(sid, "", "", SightingStatus.FAILED, error=f"no sighting {sid} in the catalog")
    return claimed, finished, to_dispose
