"""Fixity: re-read every stored object, compare with the digest recorded at intake, record the
outcome on the item and in the custody log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import FixityCheck, Item
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import FixityError
from pipeline.ingest.intake import TOOL
from pipeline.storage.base import ObjectStore


@dataclass(frozen=True)
class FixityResult:
    item: str
    sha256: str
    key: str
    outcome: str  # ok | mismatch | missing
    found: str | None = None
    size: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def verify(self) -> None:
        if not self.ok:
            raise FixityError(self.key, self.sha256, self.found)

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
        return FixityResult(item_id, sha256, key, "missing", error="stored object is missing")
    except OSError as exc:
        return FixityResult(item_id, sha256, key, "missing", error=f"stored object unreadable: {exc.strerror}")
    if found != sha256 or found_size != size:
        return FixityResult(
            item_id,
            sha256,
            key,
            "mismatch",
            found,
            found_size,
            error=f"expected {size} bytes with sha256 {sha256}, found {found_size} bytes with sha256 {found}",
        )
    return FixityResult(item_id, sha256, key, "ok", found, found_size)


def run_fixity(
    engine: Engine, store: ObjectStore, *, actor: str, items: Sequence[str] = (), batch: int = 100
) -> Iterator[FixityResult]:
    """Check every item (or the given ones), yielding results as they are recorded."""
    last_id = ""
    while True:
        with session_scope(engine) as session:
            query = select(Item.id, Item.sha256, Item.size).where(col(Item.id) > last_id)
            if items:
                query = query.where(col(Item.id).in_(list(items)))
            rows = session.exec(query.order_by(col(Item.id)).limit(batch)).all()
        if not rows:
            return
        results = [check_object(store, item_id, sha256, size) for item_id, sha256, size in rows]
        with session_scope(engine) as session, CustodyLog(session, actor) as log:
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
                log.record(
                    "fixity-checked",
                    f"item:{result.item}",
                    {
                        "outcome": result.outcome,
                        "expected": result.sha256,
                        "found": result.found,
                        "store": store.name,
                        "key": result.key,
                    },
                    tool=TOOL,
                )
        yield from results
        last_id = rows[-1][0]
