"""The derive stage: make every derivative an item's profiles call for, verify it, file it in the
content-addressed store and record it in the catalog and the custody log.

The original is only ever read. Re-running the stage for an item that already has a verified
derivative of the profile does nothing (unless forced), whichever version of the profile made it:
a new profile version changes how new derivatives are made, and those made before stay valid,
served and verifiable (forcing makes one under the new version, which is then the one served).
A failed derivative is recorded with its reason and leaves the item as it was. How a video access
copy was made (remuxed or re-encoded, and why) is kept with its verification as ``access``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import Session, col, select
from ulid import ULID

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Derivative, DerivativeStatus, Item, ItemIssue, StageStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import ContentError, SystemFault, ToolUnavailableError, TransientError, describe
from pipeline.metadata import ExtractionContext, FfprobeExtractor, MediaInfo
from pipeline.stage import StageContext, stored_original
from pipeline.stage.issues import DERIVE_FAILED, STAGE_ERROR
from pipeline.stage.status import open_stage_error, record_stage_error, set_stage
from pipeline.storage.local import LocalStore
from pipeline.transcode.commands import FFMPEG
from pipeline.transcode.derive import Derivative as MadeDerivative
from pipeline.transcode.derive import make_derivative
from pipeline.transcode.errors import TranscodeError
from pipeline.transcode.profiles import Profile, TranscodeConfig

STAGE = "derive"
logger = logging.getLogger(__name__)
_PROBE = FfprobeExtractor(check_integrity=False)


@dataclass(frozen=True)
class DeriveContext(StageContext[LocalStore]):
    config: TranscodeConfig
    timeout: float = 3600.0


@dataclass(frozen=True)
class DeriveResult:
    item: str
    profile: str  # name@version
    kind: str
    status: str  # verified | failed | skipped | missing
    sha256: str | None = None
    error: str | None = None
    system: bool = False  # failed for a system fault: the stage stays pending, to be tried again
    access: dict[str, str] | None = None  # video access copies: {"how": remux | re-encode, "why": …}

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
        if self.access:
            data["access"] = self.access
        return data


def derive(
    ctx: DeriveContext, item_ids: Sequence[str], *, only: Sequence[str] = (), force: bool = False
) -> list[DeriveResult]:
    """Make the derivatives of each item (``only`` limits the profiles by name).

    One item's failure never stops the others: a derivative that cannot be made from an odd file
    is failed with ffmpeg's words (and a ``derive-failed`` issue on the item), a defect is recorded
    as ``stage-error``, and a system fault (the stored copy missing, ffmpeg not installed) gives a
    ``failed`` result with ``system`` set and leaves the stage pending. Only a
    :class:`TransientError` is raised, for the whole batch to be retried.
    """
    results: list[DeriveResult] = []
    for item_id in dict.fromkeys(item_ids):
        try:
            results += _derive_item(ctx, item_id, only, force)
        except TransientError:
            raise
        except SystemFault as exc:
            results.append(DeriveResult(item_id, "", "", DerivativeStatus.FAILED, error=str(exc), system=True))
        except Exception as exc:
            error = record_stage_error(ctx.engine, ctx.actor, item_id, STAGE, exc, tool=ctx.tool)
            results.append(DeriveResult(item_id, "", "", DerivativeStatus.FAILED, error=f"{STAGE_ERROR}: {error}"))
    return results


def _derive_item(ctx: DeriveContext, item_id: str, only: Sequence[str], force: bool) -> list[DeriveResult]:
    with session_scope(ctx.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            return [DeriveResult(item_id, "", "", "missing", error=f"no item {item_id}")]
        sha256, kind, name = item.sha256, item.media_kind, item.original_name
    profiles = [p for p in ctx.config.for_media_kind(kind) if not only or p.name in only]
    source = stored_original(ctx.store, sha256, item_id)
    if profiles and (missing := [tool for tool in (FFMPEG, _PROBE.ffprobe) if shutil.which(tool) is None]):
        raise ToolUnavailableError(f"{' and '.join(missing)} not installed; no derivative can be made")
    media = _PROBE.extract(source, ExtractionContext(original_name=name, media_kind=kind)).media if profiles else None
    premade: dict[str, MadeDerivative] = {}  # pictures made along with a stream copy, by profile name
    try:
        item_results = [
            _derive_one(
                ctx, item_id, profile, source, media, force, _along(ctx, item_id, profile, profiles, force), premade
            )
            for profile in profiles
        ]
    finally:
        for unused in premade.values():
            if unused.path is not None:
                with contextlib.suppress(FileNotFoundError):
                    unused.path.unlink()
    failed = [r for r in item_results if r.status == DerivativeStatus.FAILED]
    defects = [r for r in failed if (r.error or "").startswith(STAGE_ERROR)]
    with session_scope(ctx.engine) as session:
        error = "; ".join(f"{r.profile}: {r.error}" for r in failed)
        set_stage(
            session, item_id, STAGE, StageStatus.FAILED if failed else StageStatus.DONE, error=error, tool=ctx.tool
        )
        session.execute(
            delete(ItemIssue).where(col(ItemIssue.item_id) == item_id, col(ItemIssue.code) == DERIVE_FAILED)
        )
        if content := [r for r in failed if r not in defects]:
            message = "Derivatives could not be made: " + "; ".join(f"{r.profile}: {r.error}" for r in content)
            session.add(ItemIssue(item_id=item_id, code=DERIVE_FAILED, message=message))
        if defects:
            open_stage_error(session, item_id, STAGE, error)
    return item_results


def _along(
    ctx: DeriveContext, item_id: str, profile: Profile, profiles: Sequence[Profile], force: bool
) -> list[Profile]:
    """The poster and contact-sheet profiles to make along with a video access copy (from the frames
    its verification decodes, when it is a stream copy): those still to be made."""
    if profile.kind != "video-access":
        return []
    wanted = [p for p in profiles if p.kind in ("poster", "contact-sheet")]
    if force or not wanted:
        return wanted
    with session_scope(ctx.engine) as session:
        return [p for p in wanted if _verified_row(session, item_id, p) is None]


def _derive_one(
    ctx: DeriveContext,
    item_id: str,
    profile: Profile,
    source: Path,
    media: MediaInfo | None,
    force: bool,
    along: Sequence[Profile] = (),
    premade: dict[str, MadeDerivative] | None = None,
) -> DeriveResult:
    with session_scope(ctx.engine) as session:
        session.get(Item, item_id, with_for_update=True)  # one derivative row per profile, however many workers
        row = _row(session, item_id, profile)
        if not force and (valid := _verified_row(session, item_id, profile)) is not None:
            label = f"{valid.profile}@{valid.profile_version}"
            return DeriveResult(item_id, label, profile.kind, "skipped", valid.sha256, access=_access(valid))
        row = row or Derivative(
            item_id=item_id,
            kind=profile.kind,
            profile=profile.name,
            profile_version=profile.version,
            status=DerivativeStatus.RUNNING,
        )
        row.status, row.progress, row.error, row.updated_at = DerivativeStatus.RUNNING, 0.0, None, utcnow()
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
        made = premade.pop(profile.name, None) if premade is not None else None
        if made is not None and made.path is not None:
            dest = made.path  # made along with the access copy; removed below once stored
        else:
            pictures = [(p, ctx.store.tmp_dir / f"{ULID()}.{p.extension}") for p in along]
            made = make_derivative(
                profile, media, source, dest, timeout=ctx.timeout, on_progress=progress, pictures=pictures
            )
            if premade is not None:
                premade.update((picture.profile.partition("@")[0], picture) for picture in made.pictures)
        if made.path is None:
            error = f"verification failed: {made.verification.reason}"
        else:
            fd = os.open(made.path, os.O_RDONLY)
            try:
                stored = ctx.store.put(fd)
            finally:
                os.close(fd)
    except (TranscodeError, ContentError) as exc:  # the original is odd: ffmpeg's own words
        error = str(exc)
    except (TransientError, SystemFault):
        _set_status(ctx, item_id, profile, DerivativeStatus.PENDING)
        raise
    except Exception as exc:  # a defect: this derivative fails with the reason, the others go on
        logger.exception("%s of item %s failed", profile.label, item_id)
        error = f"{STAGE_ERROR}: {describe(exc)}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
    with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
        row = _row(session, item_id, profile)
        assert row is not None
        row.status = DerivativeStatus.VERIFIED if stored is not None else DerivativeStatus.FAILED
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
        if made is not None and made.plan is not None:
            row.verification["access"] = made.plan.as_json()
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
                **({"access": row.verification["access"]} if "access" in row.verification else {}),
            },
            tool=row.tool,
        )
        access = _access(row)
    return DeriveResult(item_id, profile.label, profile.kind, row.status, row.sha256, error, access=access)


def _row(session: Session, item_id: str, profile: Profile) -> Derivative | None:
    return session.exec(
        select(Derivative).where(
            Derivative.item_id == item_id,
            Derivative.profile == profile.name,
            Derivative.profile_version == profile.version,
        )
    ).first()


def _verified_row(session: Session, item_id: str, profile: Profile) -> Derivative | None:
    """The item's verified derivative of ``profile``, of this version or (made before the version
    was raised) an older one; the newest version first."""
    return session.exec(
        select(Derivative)
        .where(
            Derivative.item_id == item_id,
            Derivative.profile == profile.name,
            col(Derivative.profile_version) <= profile.version,
            Derivative.status == DerivativeStatus.VERIFIED,
            col(Derivative.verified).is_(True),
        )
        .order_by(col(Derivative.profile_version).desc())
    ).first()


def _access(row: Derivative) -> dict[str, str] | None:
    access = row.verification.get("access") if isinstance(row.verification, dict) else None
    return {str(k): str(v) for k, v in access.items()} if isinstance(access, dict) else None


def _set_status(ctx: DeriveContext, item_id: str, profile: Profile, status: DerivativeStatus) -> None:
    with session_scope(ctx.engine) as session:
        row = _row(session, item_id, profile)
        if row is not None:
            row.status, row.updated_at = status, utcnow()
            session.add(row)
