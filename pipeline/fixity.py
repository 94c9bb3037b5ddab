"""Fixity: re-read every stored object, compare with the digest recorded at intake, record the
outcome on the item and in the custody log.

Checks run on demand (``evidence fixity``) and on a schedule: the reconciler queues, a batch at a
time, the items whose last check (or intake) is older than the interval. An altered or missing
object opens an issue on the item (``fixity-mismatch``, ``fixity-missing``) that stays until a check
finds the object whole again.

Given the other stores originals are replicated to (``replicas``, by name: ``EVIDENCE_STORE=local+s3``
gives ``s3``), a check also reads the item's copy in each of them and records what it found on the
item's ``Replica`` row; a copy that is altered or gone is sent again from the item's store when that
copy is whole (the replica store verifies it by reading it back), with a ``replica-repaired`` custody
event naming what was found. The other way round, an altered or missing copy in the local store is
restored from a replica found whole (fetched, hashed, then filed), also a ``replica-repaired`` event;
the check itself is recorded as found (``FixityCheck``, ``fixity-checked``), the item's state as it is
after the repair. Never silently: a copy that cannot be repaired stays ``bad`` or ``missing`` on its
row, in the check's result and, for the local copy, as the item's open issue.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, update
from sqlmodel import Session, col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import FixityCheck, FixityOutcome, Item, ItemIssue, StageRun, StageStatus
from pipeline.catalog.replicas import Replica, ReplicaStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import PipelineError, StoreError, describe
from pipeline.stage import StageContext
from pipeline.stage.issues import FIXITY_MISMATCH, FIXITY_MISSING, STAGE_ERROR
from pipeline.stage.status import clear_stage_error, in_turn, open_stage_error
from pipeline.storage.base import ObjectStore
from pipeline.storage.local import LocalStore
from pipeline.storage.transfer import hash_descriptor

STAGE = "fixity"

# Outcome -> the issue it opens on the item.
ISSUES = {FixityOutcome.MISMATCH: FIXITY_MISMATCH, FixityOutcome.MISSING: FIXITY_MISSING}

logger = logging.getLogger(__name__)

# What a check found, as the state of a replica.
REPLICA_STATUS = {
    FixityOutcome.OK: ReplicaStatus.OK,
    FixityOutcome.MISMATCH: ReplicaStatus.BAD,
    FixityOutcome.MISSING: ReplicaStatus.MISSING,
}


@dataclass(frozen=True)
class ReplicaCheck:
    """One replica of an item checked: its store and key, what the check found (``ok``, ``bad``,
    ``missing``, or ``error`` when it could not be checked), and whether it was repaired."""

    store: str
    key: str
    found: str
    size: int | None = None
    repaired: bool = False
    error: str | None = None

    @property
    def status(self) -> str:
        """The replica's state now: ``ok`` once repaired."""
        return ReplicaStatus.OK if self.repaired else self.found

    def as_json(self) -> dict[str, object]:
        return {
            "store": self.store,
            "key": self.key,
            "status": self.status,
            "found": self.found,
            "repaired": self.repaired,
            "error": self.error,
        }


@dataclass(frozen=True)
class FixityResult:
    item: str
    sha256: str
    key: str
    outcome: FixityOutcome
    found: str | None = None
    size: int | None = None
    error: str | None = None
    replicas: tuple[ReplicaCheck, ...] = field(default=())
    restored_from: str | None = None  # the replica the store's copy was restored from

    @property
    def whole(self) -> bool:
        """Whether the store's copy is whole now: found so, or restored."""
        return self.outcome == FixityOutcome.OK or self.restored_from is not None

    @property
    def ok(self) -> bool:
        return self.whole and all(r.status == ReplicaStatus.OK for r in self.replicas)

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
        if self.replicas:
            data["replicas"] = [r.as_json() for r in self.replicas]
        if self.restored_from:
            data["restored_from"] = self.restored_from
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


def check_replica(
    primary: ObjectStore, name: str, store: ObjectStore, item_id: str, sha256: str, size: int, whole: bool
) -> ReplicaCheck:
    """Check the item's copy in the replica ``store``; an altered or missing one is sent again from
    ``primary`` when the copy there is ``whole`` (just checked)."""
    found = _check_one(store, item_id, sha256, size)
    status = REPLICA_STATUS.get(found.outcome)
    if status is None:
        return ReplicaCheck(name, found.key, FixityOutcome.ERROR, error=found.error)
    if status == ReplicaStatus.OK or not whole:
        return ReplicaCheck(name, found.key, status, found.size, error=found.error)
    try:
        with primary.open(sha256) as source:
            stored = store.put(source.fileno(), expect_sha256=sha256)
    except (PipelineError, OSError) as exc:
        error = f"{found.error}; not repaired: {describe(exc)}"
        return ReplicaCheck(name, found.key, status, found.size, error=error)
    return ReplicaCheck(name, stored.key, status, found.size, repaired=True, error=found.error)


def restore_from_replica(
    local: LocalStore, replicas: Mapping[str, ObjectStore], result: FixityResult, size: int
) -> FixityResult:
    """Restore the local store's altered or missing copy from the first replica found whole: the
    replica's bytes are fetched into the store's ``tmp/`` and hashed, and only when they are the
    item's is the damaged copy removed and the fetched one filed (verified again as it is)."""
    if result.outcome not in (FixityOutcome.MISMATCH, FixityOutcome.MISSING):
        return result
    for check in result.replicas:
        if check.found != ReplicaStatus.OK:
            continue
        try:
            with tempfile.TemporaryFile(dir=local.tmp_dir) as fetched:
                with replicas[check.store].open(result.sha256) as source:
                    shutil.copyfileobj(source, fetched, local.chunk_size)
                fetched.flush()
                fd = fetched.fileno()
                os.lseek(fd, 0, os.SEEK_SET)
                found = hash_descriptor(fd, chunk_size=local.chunk_size)
                if found.digests["sha256"] != result.sha256 or found.size != size:
                    raise StoreError(f"the copy fetched from {check.store} is not the original")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(local.path(result.sha256))
                os.lseek(fd, 0, os.SEEK_SET)
                local.put(fd, expect_sha256=result.sha256)
        except (PipelineError, OSError) as exc:
            return replace(result, error=f"{result.error}; not restored from {check.store}: {describe(exc)}")
        return replace(result, restored_from=check.store)
    return result


def run_fixity(
    ctx: StageContext[ObjectStore],
    *,
    items: Sequence[str] = (),
    batch: int = 100,
    replicas: Mapping[str, ObjectStore] | None = None,
) -> Iterator[FixityResult]:
    """Check every item (or the given ones) in the store and in each of ``replicas``, yielding
    results as they are recorded."""
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
        if replicas:
            # The copies the catalog says each item has (a copy not yet made is the archive stage's).
            with session_scope(ctx.engine) as session:
                held = {
                    (item_id, name)
                    for item_id, name in session.exec(
                        select(Replica.item_id, Replica.store).where(
                            col(Replica.item_id).in_([row[0] for row in rows]), col(Replica.store).in_(list(replicas))
                        )
                    ).all()
                }
            sizes = {item_id: size for item_id, _sha256, size in rows}
            results = [
                replace(
                    r,
                    replicas=tuple(
                        check_replica(ctx.store, name, store, r.item, r.sha256, sizes[r.item], r.outcome == "ok")
                        for name, store in replicas.items()
                        if (r.item, name) in held
                    ),
                )
                for r in results
            ]
            if isinstance(ctx.store, LocalStore):
                local = ctx.store
                results = [restore_from_replica(local, replicas, r, sizes[r.item]) for r in results]
        with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
            now = utcnow()
            for result in results:
                session.add(
                    FixityCheck(
                        item_id=result.item,
                        checked_at=now,
                        outcome=result.outcome,
                        found_sha256=result.found,
                        error=f"{result.error}; restored from {result.restored_from}"
                        if result.restored_from
                        else result.error,
                    )
                )
                item = session.get(Item, result.item)
                if item is not None:
                    item.fixity_status = FixityOutcome.OK if result.restored_from else result.outcome
                    item.fixity_checked_at = now
                    session.add(item)
                _record_issue(session, replace(result, outcome=FixityOutcome.OK) if result.restored_from else result)
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
                for check in result.replicas:
                    _record_replica(session, log, ctx, result, check, now)
                if result.restored_from:
                    log.record(
                        "replica-repaired",
                        f"item:{result.item}",
                        {"store": ctx.store.name, "key": result.key, "sha256": result.sha256,
                         "found": REPLICA_STATUS[result.outcome], "error": result.error,
                         "from": result.restored_from},
                        tool=ctx.tool,
                    )  # fmt: skip
            session.execute(
                update(StageRun)
                .where(col(StageRun.stage) == STAGE, col(StageRun.item_id).in_([r.item for r in results]))
                .values(
                    status=StageStatus.DONE, attempts=StageRun.attempts + 1, error=None, tool=ctx.tool, updated_at=now
                )
            )
        for result in results:
            if result.outcome != FixityOutcome.OK:
                logger.error("fixity %s: item %s, %s: %s", result.outcome, result.item, result.key, result.error)
            for check in result.replicas:
                if check.found != ReplicaStatus.OK:
                    logger.error("fixity: item %s, %s copy %s %s%s: %s", result.item, check.store, check.key,
                                 check.found, " (repaired)" if check.repaired else "", check.error)  # fmt: skip
        yield from results
        last_id = rows[-1][0]


def _record_replica(
    session: Session,
    log: CustodyLog,
    ctx: StageContext[ObjectStore],
    result: FixityResult,
    check: ReplicaCheck,
    now: datetime,
) -> None:
    """A replica's check on its row, as a custody event, and its repair as one more."""
    details: dict[str, object] = {"outcome": check.found, "expected": result.sha256, "store": check.store}
    log.record("fixity-checked", f"item:{result.item}", {**details, "key": check.key}, tool=ctx.tool)
    if check.found == FixityOutcome.ERROR:
        return  # nothing is known of the copy: its row stays as it was
    row = session.exec(select(Replica).where(Replica.item_id == result.item, Replica.store == check.store)).first()
    row = row or Replica(item_id=result.item, store=check.store, key=check.key, size=0)
    row.key, row.verified_at, row.status = check.key, now, check.status
    row.size = check.size if check.found == ReplicaStatus.OK and check.size is not None else row.size
    if check.repaired:
        item = session.get(Item, result.item)
        row.size = item.size if item is not None else row.size
        log.record(
            "replica-repaired",
            f"item:{result.item}",
            {"store": check.store, "key": check.key, "sha256": result.sha256, "found": check.found,
             "error": check.error, "from": ctx.store.name},
            tool=ctx.tool,
        )  # fmt: skip
    session.add(row)


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


def check_scheduled(
    ctx: StageContext[ObjectStore], *, item_ids: Sequence[str], replicas: Mapping[str, ObjectStore] | None = None
) -> list[FixityResult]:
    """A queued batch of checks, one item at a time; after each, the items still waiting are marked
    as in hand, so the reconciler does not queue them again while a long batch runs. An item whose
    check is no longer pending (a repeated message) is skipped. ``replicas``: as :func:`run_fixity`'s."""
    return in_turn(
        ctx.engine, STAGE, item_ids, lambda item_id: list(run_fixity(ctx, items=[item_id], replicas=replicas))
    )
