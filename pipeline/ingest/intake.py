"""Intake: copy each arrived file once into the store while hashing it, catalogue it, and only then
move or delete the source.

Every arrival is first a *sighting* row (written by the watcher or the ``ingest`` command). Intake
works on sighting IDs and is idempotent: a sighting that is finished is reported as it is, one that
another worker holds (its lease is alive) is left alone, and one whose worker died (lease ran out) is
taken over. The order of durable steps is what keeps evidence safe:

1. the stored copy is written, read back and compared, and flushed to disk;
2. the item and the sighting are committed to the catalog, with their custody events, and the
   planned destination of the source is recorded;
3. the source is moved to ``processed/<dock>/`` (or deleted, or kept, by policy) and that is recorded.

A crash between any two steps leaves a state the next attempt finishes without loss or duplication.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy import select as select_columns  # SQLModel's select takes at most four columns
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pipeline.catalog.db import insert_rows, session_scope
from pipeline.catalog.models import (
    FINAL_SIGHTING,
    Disposition,
    Dock,
    Item,
    Sighting,
    SightingStatus,
    StageRun,
    StageStatus,
    new_id,
)
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import IntakeError, SourceChangedError, SourceReadError, SystemFault, TransientError, describe
from pipeline.ingest.kinds import guess_kind
from pipeline.stage import TOOL
from pipeline.stage.names import path_key, readable
from pipeline.storage.base import ObjectStore, StoredObject
from pipeline.storage.local import fsync_dir

logger = logging.getLogger(__name__)
# Stages every new item goes through after intake; each records its own status (StageRun).
NEXT_STAGES = ("probe", "derive")


@dataclass(frozen=True)
class IntakeContext:
    """Everything intake needs; built once from the settings by the caller."""

    engine: Engine
    store: ObjectStore
    actor: str
    inbox_dir: Path
    processed_dir: Path
    quarantine_dir: Path
    algorithms: tuple[str, ...] = ()
    lease_seconds: float = 60.0
    quiet_period: float = 5.0  # the reconciler retries a file that changed only once it is quiet again
    stale_after: float = 300.0  # queued but never started for this long: queue it again


@dataclass(frozen=True)
class Arrival:
    """A file seen at a dock (or named on the command line), before it has a sighting."""

    path: bytes
    dock: str
    policy: str  # move | delete | keep


@dataclass(frozen=True)
class IntakeResult:
    sighting: str | None
    path: str
    dock: str
    status: str  # stored | duplicate | ignored | failed | pending | busy
    item: str | None = None
    sha256: str | None = None
    size: int | None = None
    error: str | None = None
    disposition: str | None = None
    disposed_path: str | None = None
    issues: tuple[str, ...] = ()  # codes from the probe stage, when it ran in the same command
    derivatives: tuple[str, ...] = ()  # "kind:status" from the derive stage, when it ran too

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "dock": self.dock,
            "sighting": self.sighting,
            "item": self.item,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "disposition": self.disposition,
        }
        if self.disposed_path:
            data["disposed_path"] = self.disposed_path
        if self.error:
            data["error"] = self.error
        if self.issues:
            data["issues"] = list(self.issues)
        if self.derivatives:
            data["derivatives"] = list(self.derivatives)
        return data


# --------------------------------------------------------------------------------------------------
# Sightings


@dataclass(frozen=True)
class Opened:
    """A sighting just recorded, waiting for intake."""

    id: str
    path: str
    dock: str
    size: int
    raw: bytes = b""
    policy: str = "move"


def ensure_docks(session: Session, docks: Iterable[str]) -> None:
    wanted = set(docks)
    known = set(session.exec(select(Dock.id).where(col(Dock.id).in_(wanted))).all())
    if wanted - known:
        now = utcnow()
        insert_rows(session, Dock, [{"id": dock, "created_at": now} for dock in sorted(wanted - known)])


def open_sightings(
    ctx: IntakeContext, arrivals: Sequence[Arrival], *, skip_seen: bool = False, lease_to: str | None = None
) -> list[Opened | None]:
    """Record arrivals as pending sightings, one transaction for the lot.

    A path that already has an open sighting (being taken in, or its source not yet disposed of)
    gets ``None``: the same file is never taken twice at once. With ``skip_seen`` (the watcher), so
    does a file already taken in from the same path with the same size and mtime (a dock whose
    policy keeps sources, or a source whose move was cut short). With ``lease_to`` the sightings are
    recorded already leased to that worker, which takes them in next with :func:`intake_leased`.
    """
    if not arrivals:
        return []
    for attempt in range(3):
        try:
            with session_scope(ctx.engine) as session:
                return _open_sightings(session, ctx, arrivals, skip_seen, lease_to)
        except IntegrityError:
            # Another process opened one of these paths in between; look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _open_sightings(
    session: Session, ctx: IntakeContext, arrivals: Sequence[Arrival], skip_seen: bool, lease_to: str | None
) -> list[Opened | None]:
    keys = [path_key(arrival.path) for arrival in arrivals]
    now = utcnow()
    open_rows = session.exec(
        select(Sighting.active_key, Sighting.id, Sighting.status, Sighting.lease_until).where(
            col(Sighting.active_key).in_(keys)
        )
    ).all()
    taken = {key for key, *_ in open_rows}
    # A sighting left pending by a store fault (or a worker that died) whose lease is free: the
    # caller that takes in here and now takes it over instead of being turned away.
    resumable = {
        key: sid
        for key, sid, status, lease_until in open_rows
        if lease_to is not None and status == SightingStatus.PENDING and (lease_until is None or lease_until <= now)
    }
    seen: set[tuple[str, int, int]] = set()
    if skip_seen:
        # Taken in already, or failed, from this path with this size and time: nothing new to try.
        rows = session.exec(
            select(Sighting.path_key, Sighting.size, Sighting.mtime_ns).where(
                col(Sighting.path_key).in_(keys),
                col(Sighting.status).in_([SightingStatus.STORED, SightingStatus.DUPLICATE, SightingStatus.FAILED]),
            )
        ).all()
        seen = {(key, size, mtime) for key, size, mtime in rows}
    ensure_docks(session, (arrival.dock for arrival in arrivals))
    until = now + timedelta(seconds=ctx.lease_seconds) if lease_to is not None else None
    out: list[Opened | None] = []
    new_rows: list[dict[str, object]] = []
    resumed: list[dict[str, object]] = []
    with CustodyLog(session, ctx.actor) as log:
        for arrival, key in zip(arrivals, keys, strict=True):
            if key in resumable:
                sid = resumable.pop(key)
                size = _size_or_zero(arrival.path)
                resumed.append(
                    {
                        "id": sid,
                        "lease_owner": lease_to,
                        "lease_until": until,
                        "source_policy": arrival.policy,
                        "updated_at": now,
                    }
                )
                out.append(Opened(sid, readable(arrival.path), arrival.dock, size, arrival.path, arrival.policy))
                continue
            if key in taken:
                out.append(None)
                continue
            try:
                st = os.lstat(arrival.path)
                size, mtime_ns = st.st_size, st.st_mtime_ns
            except OSError:
                if skip_seen:  # the watcher's hint came after the file was taken in and moved
                    out.append(None)
                    continue
                size, mtime_ns = 0, 0  # named on the command line but gone: intake reports it
            if (key, size, mtime_ns) in seen:
                out.append(None)
                continue
            taken.add(key)
            opened = Opened(new_id(), readable(arrival.path), arrival.dock, size, arrival.path, arrival.policy)
            new_rows.append(
                {
                    "id": opened.id,
                    "dock_id": arrival.dock,
                    "source_path": opened.path,
                    "source_path_raw": arrival.path,
                    "path_key": key,
                    "size": size,
                    "mtime_ns": mtime_ns,
                    "received_at": now,
                    "status": SightingStatus.PENDING,
                    "item_id": None,
                    "error": None,
                    "disposition": Disposition.PENDING,
                    "disposed_path": None,
                    "source_policy": arrival.policy,
                    "active_key": key,
                    "lease_owner": lease_to,
                    "lease_until": until,
                    "queued_at": None,
                    "attempts": int(lease_to is not None),
                    "updated_at": now,
                }
            )
            log.record(
                "received",
                f"sighting:{opened.id}",
                {"dock": arrival.dock, "path": opened.path, "size": size},
                tool=TOOL,
            )
            out.append(opened)
        if new_rows:
            insert_rows(session, Sighting, new_rows)
        if resumed:
            session.execute(update(Sighting), resumed)
    return out


def _size_or_zero(path: bytes) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def mark_queued(engine: Engine, sighting_ids: Sequence[str]) -> None:
    with session_scope(engine) as session:
        session.execute(update(Sighting).where(col(Sighting.id).in_(list(sighting_ids))).values(queued_at=utcnow()))


# --------------------------------------------------------------------------------------------------
# Intake


@dataclass
class _Work:
    """One sighting's progress through a batch."""

    id: str
    path: bytes
    shown: str
    dock: str
    policy: str
    stored: StoredObject | None = None
    size: int = 0
    mtime_ns: int = 0
    name: bytes = b""
    failure: str | None = None  # the file's fault (or a defect): recorded as failed
    system: str | None = None  # the store's fault: the sighting stays pending and is tried again
    quarantine: bool = False
    changed: bool = False
    result: IntakeResult | None = None
    disposed_to: bytes | None = None


def intake(ctx: IntakeContext, sighting_ids: Sequence[str], *, worker: str) -> list[IntakeResult]:
    """Take in the given sightings; returns one result per ID, in order."""
    claimed, finished, to_dispose = _claim(ctx, sighting_ids, worker)
    return _take_in(ctx, sighting_ids, claimed, finished, to_dispose, worker)


def intake_leased(ctx: IntakeContext, opened: Sequence[Opened], *, worker: str) -> list[IntakeResult]:
    """Take in sightings just opened with ``open_sightings(..., lease_to=worker)``: their lease is
    already this worker's, so there is nothing to claim. Returns one result per sighting, in order."""
    claimed = [_Work(o.id, o.raw, o.path, o.dock, o.policy) for o in opened]
    return _take_in(ctx, [o.id for o in opened], claimed, {}, [], worker)


def _take_in(
    ctx: IntakeContext,
    sighting_ids: Sequence[str],
    claimed: list[_Work],
    finished: dict[str, IntakeResult],
    to_dispose: list[_Work],
    worker: str,
) -> list[IntakeResult]:
    if claimed:
        durable_each = len(claimed) == 1
        if durable_each:
            _copy_one(ctx, claimed[0], worker, durable=True)
        else:
            for work in claimed:
                _copy_one(ctx, work, worker, durable=False)
            if any(work.stored for work in claimed):
                ctx.store.sync()
        _catalogue(ctx, claimed, worker)
        to_dispose.extend(work for work in claimed if work.result and work.result.status != SightingStatus.PENDING)
    _dispose(ctx, to_dispose)
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


def _work_of(sighting: Sighting) -> _Work:
    return _Work(
        id=sighting.id,
        path=sighting.source_path_raw,
        shown=sighting.source_path,
        dock=sighting.dock_id,
        policy=sighting.source_policy,
        size=sighting.size,
        mtime_ns=sighting.mtime_ns,
    )


def _claim(
    ctx: IntakeContext, sighting_ids: Sequence[str], worker: str
) -> tuple[list[_Work], dict[str, IntakeResult], list[_Work]]:
    claimed: list[_Work] = []
    finished: dict[str, IntakeResult] = {}
    to_dispose: list[_Work] = []
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
        finished[sid] = IntakeResult(sid, "", "", "failed", error=f"no sighting {sid} in the catalog")
    return claimed, finished, to_dispose


def _renew_lease(ctx: IntakeContext, sighting_id: str, worker: str) -> None:
    with session_scope(ctx.engine) as session:
        sighting = session.get(Sighting, sighting_id, with_for_update=True)
        if sighting is None or sighting.lease_owner != worker:
            raise IntakeError(sighting_id, "lease lost to another worker; stopping this copy")
        sighting.lease_until = utcnow() + timedelta(seconds=ctx.lease_seconds)
        session.add(sighting)


def _open_source(path: bytes) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise IntakeError(readable(path), "vanished before it could be read") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntakeError(readable(path), "is a symbolic link; only regular files are taken in") from exc
        raise IntakeError(readable(path), f"cannot be read: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IntakeError(readable(path), "is not a regular file")
    return fd


def _copy_one(ctx: IntakeContext, work: _Work, worker: str, *, durable: bool) -> None:
    """Copy one source into the store. Sets ``work.stored``, ``work.failure`` (the file's fault),
    ``work.system`` (the store's) or ``work.changed``; raises only :class:`TransientError` (the
    catalog went away while renewing the lease: the whole batch is tried again)."""
    work.name = os.path.basename(work.path)
    try:
        fd = _open_source(work.path)
    except IntakeError as exc:
        work.failure = exc.reason
        work.quarantine = os.path.lexists(work.path)
        return
    try:
        before = os.fstat(fd)
        work.size, work.mtime_ns = before.st_size, before.st_mtime_ns
        if before.st_size == 0:
            work.failure = "zero-byte file: nothing was recorded, not catalogued as evidence"
            work.quarantine = True
            return
        stored = ctx.store.put(
            fd,
            algorithms=ctx.algorithms,
            durable=durable,
            heartbeat=lambda _offset: _renew_lease(ctx, work.id, worker),
        )
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
            stored.size != before.st_size
        ):
            raise SourceChangedError(work.shown, "changed while it was being copied (still being written)")
        work.stored = stored
    except SourceChangedError:
        work.changed = True
    except SourceReadError as exc:
        work.failure = exc.reason
        work.quarantine = True
    except TransientError:
        raise
    except SystemFault as exc:  # the store cannot take it now: the source stays, to be tried again
        work.system = f"{exc}; the file stays where it is and is taken in once the store is fixed"
    except IntakeError as exc:  # the lease went to another worker, which reports the outcome
        work.failure = str(exc)
    except Exception as exc:  # a defect: this file fails, with the reason; the batch goes on
        logger.exception("intake of %s failed", work.shown)
        work.failure = f"stage-error: {describe(exc)}"
    finally:
        os.close(fd)


def _catalogue(ctx: IntakeContext, batch: list[_Work], worker: str) -> None:
    for attempt in range(3):
        try:
            with session_scope(ctx.engine) as session:
                _catalogue_in(session, ctx, batch, worker)
            return
        except IntegrityError:
            # Another worker catalogued the same content at the same moment: now it is a duplicate.
            if attempt == 2:
                raise


def _catalogue_in(session: Session, ctx: IntakeContext, batch: list[_Work], worker: str) -> None:
    now = utcnow()
    ids = [work.id for work in batch]
    sightings = {
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
    digests = [work.stored.sha256 for work in batch if work.stored]
    items = {i.sha256: i for i in session.exec(select(Item).where(col(Item.sha256).in_(digests))).all()}
    new_items: dict[str, dict[str, object]] = {}
    changes: list[dict[str, object]] = []
    with CustodyLog(session, ctx.actor) as log:
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
            target = f"sighting:{work.id}"
            if work.changed:
                error = "changed while being copied; will be taken in again once complete"
                change.update(queued_at=None, error=error)  # the reconciler requeues it once quiet
                log.record("intake-deferred", target, {"path": work.shown, "reason": error}, tool=TOOL)
                work.result = replace(result, error=error)
                continue
            if work.system is not None:
                # Pending still, the lease given up: the reconciler (or the next `ingest`) retries.
                change["error"] = work.system
                log.record("intake-deferred", target, {"path": work.shown, "reason": work.system}, tool=TOOL)
                work.result = replace(
                    result, status=SightingStatus.FAILED, error=work.system, disposition=Disposition.KEPT
                )
                continue
            if work.failure is not None or work.stored is None:
                error = work.failure or "not stored"
                work.disposed_to = _planned(ctx, work, quarantine=True) if work.quarantine else None
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
                log.record("intake-failed", target, {"path": work.shown, "dock": work.dock, "reason": error}, tool=TOOL)
                work.result = replace(
                    result, status=SightingStatus.FAILED, error=error, disposition=disposition, disposed_path=shown_to
                )
                continue
            stored = work.stored
            existing = items.get(stored.sha256)
            if existing is None and stored.sha256 not in new_items:
                item_id = new_id()
                name = readable(work.name)
                new_items[stored.sha256] = {
                    "id": item_id,
                    "sha256": stored.sha256,
                    "size": stored.size,
                    "digests": dict(stored.digests),
                    "original_name": name,
                    "original_name_raw": work.name,
                    "media_kind": guess_kind(name, stored.head),
                    "dock_id": work.dock,
                    "status": "stored",
                    "created_at": now,
                    "received_at": sighting.received_at,  # when it reached the platform: the deadline's yardstick
                    "fixity_status": None,
                    "fixity_checked_at": None,
                }
                status = SightingStatus.STORED
                log.record(
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
                        "store": ctx.store.name,
                        "key": stored.key,
                        "verified": "read back and compared while copying",
                        "worker": worker,
                        **({"store_repaired": True} if stored.repaired else {}),
                    },
                    tool=TOOL,
                )
            else:
                item_id = str(existing.id if existing else new_items[stored.sha256]["id"])
                if existing is not None and set(stored.digests) - set(existing.digests):
                    existing.digests = {**stored.digests, **existing.digests}
                    session.add(existing)
                status = SightingStatus.DUPLICATE
                log.record(
                    "duplicate-received",
                    f"item:{item_id}",
                    {"sha256": stored.sha256, "dock": work.dock, "source": work.shown, "sighting": work.id},
                    tool=TOOL,
                )
            work.disposed_to = _planned(ctx, work, quarantine=False)
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
            work.result = replace(
                result,
                status=status,
                item=item_id,
                sha256=stored.sha256,
                size=stored.size,
                disposition=disposition,
                disposed_path=shown_to,
            )
        if new_items:
            insert_rows(session, Item, list(new_items.values()))
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
                        "tool": TOOL if status == StageStatus.DONE else None,
                        "updated_at": now,
                    }
                    for row in new_items.values()
                    for stage, status in (
                        ("intake", StageStatus.DONE),
                        *((name, StageStatus.PENDING) for name in NEXT_STAGES),
                    )
                ],
            )
        if changes:
            session.execute(update(Sighting), changes)


def _relative_to_dock(ctx: IntakeContext, path: bytes, dock: str) -> bytes:
    dock_dir = os.path.join(os.fsencode(ctx.inbox_dir), os.fsencode(dock))
    if path.startswith(dock_dir + b"/"):
        return path[len(dock_dir) + 1 :]
    return os.path.basename(path)


def _planned(ctx: IntakeContext, work: _Work, *, quarantine: bool) -> bytes | None:
    """Where the source goes: a path under processed/ or quarantine/, or None (delete or keep)."""
    if quarantine:
        if work.policy == "keep":
            return None
        root = ctx.quarantine_dir
    else:
        if work.policy != "move":
            return None
        root = ctx.processed_dir
    target = os.path.join(os.fsencode(root), os.fsencode(work.dock), _relative_to_dock(ctx, work.path, work.dock))
    if os.path.lexists(target):
        stem, dot, suffix = os.path.basename(target).rpartition(b".")
        unique = (stem + b"." + work.id.encode() + dot + suffix) if stem else (target + b"." + work.id.encode())
        target = os.path.join(os.path.dirname(target), os.path.basename(unique))
    return target


def _dispose(ctx: IntakeContext, batch: list[_Work]) -> None:
    """Move, delete or keep each source as its catalogued sighting says; record what happened."""
    pending = [
        work
        for work in batch
        if work.result is not None
        and work.result.status != SightingStatus.PENDING
        and work.result.disposition in (None, Disposition.PENDING)
    ]
    if not pending:
        return
    now = utcnow()
    changes: list[dict[str, object]] = []
    with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
        for work in pending:
            assert work.result is not None
            disposition, note = _dispose_one(work)
            error = "; ".join(filter(None, [work.result.error, note])) or None
            change: dict[str, object] = {
                "id": work.id,
                "updated_at": now,
                "error": error,
                "lease_owner": None,
                "lease_until": None,
            }
            if disposition != Disposition.PENDING:  # else retried by the reconciler; the path stays claimed
                change.update(disposition=disposition, active_key=None)
                if disposition not in (Disposition.MOVED, Disposition.QUARANTINED):
                    change.update(disposed_path=None, disposed_path_raw=None)
            changes.append(change)
            moved_to = (
                work.result.disposed_path if disposition in (Disposition.MOVED, Disposition.QUARANTINED) else None
            )
            log.record(
                f"source-{disposition}",
                f"sighting:{work.id}",
                {"path": work.shown, "to": moved_to, **({"note": note} if note else {})},
                tool=TOOL,
            )
            work.result = replace(work.result, disposition=disposition, disposed_path=moved_to, error=error)
        session.execute(update(Sighting), changes)


def _dispose_one(work: _Work) -> tuple[str, str | None]:
    assert work.result is not None
    failed = work.result.status == SightingStatus.FAILED
    target = work.disposed_to
    if not os.path.lexists(work.path):
        if target is not None and os.path.lexists(target):
            return (Disposition.QUARANTINED if failed else Disposition.MOVED), None  # done before a crash
        return Disposition.GONE, "source no longer in place"
    if not failed:
        try:
            now = os.lstat(work.path)
        except OSError as exc:
            return Disposition.PENDING, f"cannot check source before disposal: {exc.strerror}"
        if work.size and (now.st_size, now.st_mtime_ns) != (work.size, work.mtime_ns):
            return Disposition.KEPT, "source changed after it was stored; left in place for review"
    if target is None:
        if work.policy == "delete" and not failed:
            try:
                os.unlink(work.path)
            except OSError as exc:
                return Disposition.PENDING, f"cannot delete source: {exc.strerror}"
            return Disposition.DELETED, None
        return Disposition.KEPT, None
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(work.path, target)
        with contextlib.suppress(OSError):
            fsync_dir(os.path.dirname(target))
    except OSError as exc:
        return Disposition.PENDING, f"cannot move source: {exc.strerror}"
    return (Disposition.QUARANTINED if failed else Disposition.MOVED), None
