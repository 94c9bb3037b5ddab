"""Fixity: re-read every stored object, compare with the digest recorded at intake, record the
outcome on the item and in the custody log.

Checks run on demand (``evidence fixity``) and on a schedule: the reconciler queues, a batch at a
time, the items whose last check (or intake) is older than the interval. An altered or missing
object opens an issue on the item (``fixity-mismatch``, ``fixity-missing``) that stays until a check
finds the object whole again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import FixityCheck, FixityOutcome, Item, ItemIssue, StageRun, StageStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import describe
from pipeline.stage import StageContext
from pipeline.stage.issues import FIXITY_MISMATCH, FIXITY_MISSING, STAGE_ERROR
from pipeline.stage.status import clear_stage_error, in_turn, open_stage_error
from pipeline.storage.base import ObjectStore

STAGE = "fixity"

# Outcome -> the issue it opens on the item.
ISSUES = {FixityOutcome.MISMATCH: FIXITY_MISMATCH, FixityOutcome.MISSING: FIXITY_MISSING}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FixityResult:
    item: str
    sha256: str
    key: str
    outcome: FixityOutcome
    found: str | None = None
    size: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == FixityOutcome.OK

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "item": self.item,
            "sha256": self.sha256,
            "key": self.key,
            "status": self.outcome,
            "found": self.found,
            "size": self.size,
        }
        if self.error:
            data["error"] = self.error
        return data


def check_object(store: ObjectStore, item_id: str, sha256: str, size: int) -> FixityResult:
    key = store.key(sha256)
    try:
        found, found_size = store.digest(sha256)
    except FileNotFoundError:
        return FixityResult(item_id, sha256, key, FixityOutcome.MISSING, error="stored object is missing")
    except OSError as exc:
        return FixityResult(
            item_id, sha256, key, FixityOutcome.MISSING, error=f"stored object unreadable: {exc.strerror}"
        )
    if found != sha256 or found_size != size:
        return FixityResult(
            item_id,
            sha256,
            key,
            FixityOutcome.MISMATCH,
            found,
            found_size,
            error=f"expected {size} bytes with sha256 {sha256}, found {found_size} bytes with sha256 {found}",
        )
    return FixityResult(item_id, sha256, key, FixityOutcome.OK, found, found_size)


def _check_one(store: ObjectStore, item_id: str, sha256: str, size: int) -> FixityResult:
    """One item's check; a defect is this item's ``error`` outcome, and the others are still checked."""
    try:
        return check_object(store, item_id, sha256, size)
    except Exception as exc:
        logger.exception("fixity check of item %s failed", item_id)
        return FixityResult(item_id, sha256, sha256, FixityOutcome.ERROR, error=f"{STAGE_ERROR}: {describe(exc)}")


def run_fixity(
    ctx: StageContext[ObjectStore], *, items: Sequence[str] = (), batch: int = 100
) -> Iterator[FixityResult]:
    """Check every item (or the given ones), yielding results as they are recorded."""
    last_id = ""
    while True:
        with session_scope(ctx.engine) as session:
            query = select(Item.id, Item.sha256, Item.size).where(col(Item.id) > last_id)
            if items:
                query = query.where(col(Item.id).in_(list(items)))
            rows = session.exec(query.order_by(col(Item.id)).limit(batch)).all()
        if not rows:
            return
        results = [_check_one(ctx.store, item_id, sha256, size) for item_id, sha256, size in rows]
        with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
            now = utcnow()
            for result in results:
                session.add(
                    FixityCheck(
                        item_id=result.item,
                        checked_at=now,
                        outcome=result.outcome,
                        found_sha256=result.found,
                        error=result.error,
                    )
                )
                item = session.get(Item, result.item)
                if item is not None:
                    item.fixity_status = result.outcome
                    item.fixity_checked_at = now
                    session.add(item)
                _record_issue(session, result)
                log.record(
                    "fixity-checked",
                    f"item:{result.item}",
                    {
                        "outcome": result.outcome,
                        "expected": result.sha256,
                        "found": result.found,
                        "store": ctx.store.name,
                        "key": result.key,
                    },
                    tool=ctx.tool,
                )
            session.execute(
                update(StageRun)
                .where(col(StageRun.stage) == STAGE, col(StageRun.item_id).in_([r.item for r in results]))
                .values(
                    status=StageStatus.DONE, attempts=StageRun.attempts + 1, error=None, tool=ctx.tool, updated_at=now
                )
            )
        for result in results:
            if not result.ok:
                logger.error("fixity %s: item %s, %s: %s", result.outcome, result.item, result.key, result.error)
        yield from results
        last_id = rows[-1][0]


def _record_issue(session: Session, result: FixityResult) -> None:
    """Open the item's fixity issue when its object is altered or gone; close it once it is whole."""
    session.execute(
        delete(ItemIssue).where(col(ItemIssue.item_id) == result.item, col(ItemIssue.code).in_(ISSUES.values()))
    )
    if result.outcome == FixityOutcome.ERROR:
        open_stage_error(session, result.item, STAGE, result.error or "")
    else:
        clear_stage_error(session, result.item, STAGE)
    if result.outcome in ISSUES:
        message = f"Stored copy {result.outcome}: {result.error}. Restore it from a replica or a verified disc."
        session.add(ItemIssue(item_id=result.item, code=ISSUES[result.outcome], message=message))


def schedule_fixity(engine: Engine, *, every: timedelta, limit: int) -> list[str]:
    """The items due for a scheduled check (last checked, or taken in, longer than ``every`` ago),
    oldest first, marked pending; none while an earlier batch is still pending, so the queue stays
    short and the pace follows what the workers manage."""
    with session_scope(engine) as session:
        waiting = session.exec(
            select(func.count())
            .select_from(StageRun)
            .where(StageRun.stage == STAGE, StageRun.status == StageStatus.PENDING)
        ).one()
        if waiting:
            return []
        last = func.coalesce(col(Item.fixity_checked_at), col(Item.created_at))
        due = list(
            session.exec(
                select(Item.id).where(last <= utcnow() - every).order_by(last, col(Item.id)).limit(limit)
            ).all()
        )
        if not due:
            return []
        runs = {
            run.item_id: run
            for run in session.exec(
                select(StageRun).where(StageRun.stage == STAGE, col(StageRun.item_id).in_(due))
            ).all()
        }
        now = utcnow()
        for item_id in due:
            run = runs.get(item_id) or StageRun(item_id=item_id, stage=STAGE, status=StageStatus.PENDING)
            run.status, run.updated_at = StageStatus.PENDING, now
            session.add(run)
    return due


def check_scheduled(ctx: StageContext[ObjectStore], *, item_ids: Sequence[str]) -> list[FixityResult]:
    """A queued batch of checks, one item at a time; after each, the items still waiting are marked
    as in hand, so the reconciler does not queue them again while a long batch runs. An item whose
    check is no longer pending (a repeated message) is skipped."""
    return in_turn(ctx.engine, STAGE, item_ids, lambda item_id: list(run_fixity(ctx, items=[item_id])))
