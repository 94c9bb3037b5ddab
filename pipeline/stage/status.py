"""A stage's outcome for one item, recorded the same way by every stage.

The error policy (see :mod:`pipeline.errors`) in the catalog: ``StageRun.status`` is ``pending``
(to do, or to be tried again after a system fault), ``done`` or ``failed`` (a content error, a
defect, or a system fault that outlasted its retries; the reconciler leaves it alone until a person
retries it). A defect is also an open ``stage-error`` issue on the item, naming the stage and the
exception, which the stage's next success closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Item, ItemIssue, StageRun, StageStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import describe
from pipeline.stage.issues import STAGE_ERROR

logger = logging.getLogger(__name__)
R = TypeVar("R")


def stage_error_message(stage: str, error: str) -> str:
    return f"The {stage} stage failed on this item: {error}. Retry it with `evidence {stage} ID` once fixed."


def set_stage(
    session: Session, item_id: str, stage: str, status: str, *, error: str | None = None, tool: str | None = None
) -> None:
    """Record ``stage``'s status for the item (one row per item and stage)."""
    run = session.exec(select(StageRun).where(StageRun.item_id == item_id, StageRun.stage == stage)).first()
    run = run or StageRun(item_id=item_id, stage=stage, status=status)
    run.status, run.error, run.attempts, run.updated_at = status, error or None, run.attempts + 1, utcnow()
    if tool is not None:
        run.tool = tool[:255]
    session.add(run)
    if status == StageStatus.DONE:
        clear_stage_error(session, item_id, stage)


def clear_stage_error(session: Session, item_id: str, stage: str) -> None:
    session.execute(
        delete(ItemIssue).where(
            col(ItemIssue.item_id) == item_id,
            col(ItemIssue.code) == STAGE_ERROR,
            col(ItemIssue.message).startswith(f"The {stage} stage "),
        )
    )


def open_stage_error(session: Session, item_id: str, stage: str, error: str) -> None:
    """Open (or replace) the item's ``stage-error`` issue for ``stage``, with the error's text."""
    clear_stage_error(session, item_id, stage)
    session.add(ItemIssue(item_id=item_id, code=STAGE_ERROR, message=stage_error_message(stage, error)))


def record_stage_error(engine: Engine, actor: str, item_id: str, stage: str, exc: BaseException, *, tool: str) -> str:
    """A defect met while ``stage`` worked on one item: logged with its traceback, recorded on the
    item (issue ``stage-error``, stage failed, custody event). Returns the text recorded."""
    error = describe(exc)
    logger.error("%s stage failed on item %s: %s", stage, item_id, error, exc_info=exc)
    with session_scope(engine) as session, CustodyLog(session, actor) as log:
        if session.get(Item, item_id) is None:
            return error
        set_stage(session, item_id, stage, StageStatus.FAILED, error=f"{STAGE_ERROR}: {error}")
        open_stage_error(session, item_id, stage, error)
        log.record(STAGE_ERROR, f"item:{item_id}", {"stage": stage, "error": error}, tool=tool)
    return error


def mark_failed(engine: Engine, item_ids: list[str], stage: str, error: str) -> None:
    """After a system fault outlasted its retries: the stage is failed with the reason, and the
    reconciler leaves it alone until a person retries it."""
    with session_scope(engine) as session:
        for item_id in item_ids:
            run = session.exec(select(StageRun).where(StageRun.item_id == item_id, StageRun.stage == stage)).first()
            if run is not None and run.status != StageStatus.DONE:
                run.status, run.error, run.updated_at = StageStatus.FAILED, error, utcnow()
                session.add(run)


def stage_pending(engine: Engine, stage: str, item_id: str) -> bool:
    """Whether the item's ``stage`` is still to be done (not done, nor failed, since it was queued)."""
    with session_scope(engine) as session:
        status = session.exec(
            select(StageRun.status).where(StageRun.item_id == item_id, StageRun.stage == stage)
        ).first()
    return status == StageStatus.PENDING


def in_turn(engine: Engine, stage: str, item_ids: Sequence[str], run: Callable[[str], list[R]]) -> list[R]:
    """Run ``stage`` over a queued batch one item at a time. An item whose stage is no longer pending
    (done or failed since: a repeated message) is skipped, and after each item the ones still waiting
    are marked as in hand, so the reconciler does not queue them again while a long batch runs."""
    ids = list(dict.fromkeys(item_ids))
    results: list[R] = []
    for index, item_id in enumerate(ids):
        if stage_pending(engine, stage, item_id):
            results += run(item_id)
        if rest := ids[index + 1 :]:
            touch_stage(engine, stage, rest)
    return results


def touch_stage(engine: Engine, stage: str, item_ids: Sequence[str]) -> None:
    """Mark these items' pending ``stage`` as recently queued (or still being worked on)."""
    with session_scope(engine) as session:
        session.execute(
            update(StageRun)
            .where(col(StageRun.stage) == stage, col(StageRun.item_id).in_(list(item_ids)))
            .values(updated_at=utcnow())
        )
