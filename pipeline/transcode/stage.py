"""The derive stage: make every derivative an item's profiles call for, verify it, file it in the
content-addressed store and record it in the catalog and the custody log.

The original is only ever read. Re-running the stage for an item that already has a verified
derivative of the same profile version does nothing (unless forced); a failed derivative is
recorded with its reason and leaves the item as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select
from ulid import ULID

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Derivative, Item, StageRun
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.metadata import ExtractionContext, FfprobeExtractor, MediaInfo
from pipeline.storage.local import LocalStore
from pipeline.transcode.derive import make_derivative
from pipeline.transcode.errors import TranscodeError
from pipeline.transcode.profiles import Profile, TranscodeConfig

STAGE = "derive"
_PROBE = FfprobeExtractor(check_integrity=False)


@dataclass(frozen=True)
class DeriveContext:
    engine: Engine
    store: LocalStore
    actor: str
    config: TranscodeConfig
    timeout: float = 3600.0


@dataclass(frozen=True)
class DeriveResult:
    item: str
    profile: str  # name@version
    kind: str
    status: str  # verified | failed | skipped
    sha256: str | None = None
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "item": self.item,
            "profile": self.profile,
            "kind": self.kind,
            "status": self.status,
            "sha256": self.sha256,
        }
        if self.error:
            data["error"] = self.error
        return data


def derive(
    ctx: DeriveContext, item_ids: Sequence[str], *, only: Sequence[str] = (), force: bool = False
) -> list[DeriveResult]:
    """Make the derivatives of each item (``only`` limits the profiles by name)."""
    results: list[DeriveResult] = []
    for item_id in item_ids:
        with session_scope(ctx.engine) as session:
            item = session.get(Item, item_id)
            if item is None:
                continue
            sha256, kind, name = item.sha256, item.media_kind, item.original_name
        profiles = [p for p in ctx.config.for_media_kind(kind) if not only or p.name in only]
        source = ctx.store.path(sha256)
        media = _PROBE.extract(source, ExtractionContext(original_name=name, media_kind=kind)).media
        item_results = [_derive_one(ctx, item_id, profile, source, media, force) for profile in profiles]
        with session_scope(ctx.engine) as session:
            failed = [r for r in item_results if r.status == "failed"]
            _stage(session, item_id, "failed" if failed else "done", "; ".join(r.error or "" for r in failed))
        results += item_results
    return results


def _derive_one(
    ctx: DeriveContext, item_id: str, profile: Profile, source: Path, media: MediaInfo | None, force: bool
) -> DeriveResult:
    with session_scope(ctx.engine) as session:
        row = _row(session, item_id, profile)
        if row is not None and row.status == "verified" and not force:
            return DeriveResult(item_id, profile.label, profile.kind, "skipped", row.sha256)
        row = row or Derivative(
            item_id=item_id, kind=profile.kind, profile=profile.name, profile_version=profile.version, status="running"
        )
        row.status, row.progress, row.error, row.updated_at = "running", 0.0, None, utcnow()
        session.add(row)
    dest = ctx.store.tmp_dir / f"{ULID()}.{profile.extension}"
    last = [0.0]

    def progress(percent: float) -> None:
        if percent - last[0] >= 10 or percent >= 100:
            last[0] = percent
            with session_scope(ctx.engine) as session:
                current = _row(session, item_id, profile)
                if current is not None:
                    current.progress = percent
                    session.add(current)

    error: str | None = None
    stored = made = None
    try:
        if media is None:
            raise TranscodeError(profile.name, None, reason="the original could not be probed")
        made = make_derivative(profile, media, source, dest, timeout=ctx.timeout, on_progress=progress)
        if made.path is None:
            error = f"verification failed: {made.verification.reason}"
        else:
            fd = os.open(made.path, os.O_RDONLY)
            try:
                stored = ctx.store.put(fd)
            finally:
                os.close(fd)
    except TranscodeError as exc:
        error = str(exc)
    finally:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
    with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
        row = _row(session, item_id, profile)
        assert row is not None
        row.status = "verified" if stored is not None else "failed"
        row.verified = stored is not None
        row.error = error
        row.tool = made.tool if made else None
        row.verification = (
            {
                "ok": made.verification.ok,
                "method": made.verification.method,
                "reason": made.verification.reason,
                "details": made.verification.details,
            }
            if made
            else {}
        )
        if stored is not None:
            row.sha256, row.size, row.store_key, row.progress = stored.sha256, stored.size, stored.key, 100.0
        row.updated_at = utcnow()
        session.add(row)
        log.record(
            "derived" if stored is not None else "derive-failed",
            f"item:{item_id}",
            {
                "profile": profile.label,
                "kind": profile.kind,
                "sha256": row.sha256,
                "size": row.size,
                "verification": row.verification.get("method"),
                "error": error,
            },
            tool=row.tool,
        )
    return DeriveResult(item_id, profile.label, profile.kind, row.status, row.sha256, error)


def _row(session: Session, item_id: str, profile: Profile) -> Derivative | None:
    return session.exec(
        select(Derivative).where(
            Derivative.item_id == item_id,
            Derivative.profile == profile.name,
            Derivative.profile_version == profile.version,
        )
    ).first()


def _stage(session: Session, item_id: str, status: str, error: str) -> None:
    run = session.exec(select(StageRun).where(StageRun.item_id == item_id, StageRun.stage == STAGE)).first()
    run = run or StageRun(item_id=item_id, stage=STAGE, status=status)
    run.status, run.error, run.attempts, run.updated_at = status, error or None, run.attempts + 1, utcnow()
    session.add(run)
