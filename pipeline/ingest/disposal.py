"""Disposal: where a source goes once it is catalogued (``processed/<dock>/`` when stored,
``quarantine/<dock>/`` when it failed, or nowhere when the dock's policy deletes or keeps it), and
moving, deleting or keeping it, with the custody event that says which."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace

from sqlalchemy import update

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Disposition, Sighting, SightingStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.ingest.context import IntakeContext, Work
from pipeline.storage.local import fsync_dir


def _relative_to_dock(ctx: IntakeContext, path: bytes, dock: str) -> bytes:
    dock_dir = os.path.join(os.fsencode(ctx.inbox_dir), os.fsencode(dock))
    if path.startswith(dock_dir + b"/"):
        return path[len(dock_dir) + 1 :]
    return os.path.basename(path)


def planned_destination(ctx: IntakeContext, work: Work, *, quarantine: bool) -> bytes | None:
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


def dispose(ctx: IntakeContext, batch: list[Work]) -> None:
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
                tool=ctx.tool,
            )
            work.result = replace(work.result, disposition=disposition, disposed_path=moved_to, error=error)
        session.execute(update(Sighting), changes)


def _dispose_one(work: Work) -> tuple[str, str | None]:
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
