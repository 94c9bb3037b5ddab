"""Sightings: every arrival at a dock (or named on the command line) is first recorded as a pending
*sighting* row, in one transaction for the lot, before intake takes it in by its ID. A path is
never opened twice at once, and a sighting left pending with a free lease is taken over."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pipeline.catalog.db import insert_rows, session_scope
from pipeline.catalog.models import Disposition, Dock, Sighting, SightingStatus, new_id
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.ingest.context import IntakeContext
from pipeline.stage.names import path_key, readable


@dataclass(frozen=True)
class Arrival:
    """A file seen at a dock (or named on the command line), before it has a sighting."""

    path: bytes
    dock: str
    policy: str  # move | delete | keep
    name: bytes | None = None  # the name it arrived under, when not its path's (an upload's)


@dataclass(frozen=True)
class Opened:
    """A sighting just recorded, waiting for intake."""

    id: str
    path: str
    dock: str
    size: int
    raw: bytes = b""
    policy: str = "move"
    name: bytes | None = None


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
    recorded already leased to that worker, which takes them in next with
    :func:`pipeline.ingest.intake.intake_leased`.
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
                out.append(
                    Opened(sid, readable(arrival.path), arrival.dock, size, arrival.path, arrival.policy, arrival.name)
                )
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
            opened = Opened(
                new_id(), readable(arrival.path), arrival.dock, size, arrival.path, arrival.policy, arrival.name
            )
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
                    "original_name_raw": arrival.name,
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
                tool=ctx.tool,
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
