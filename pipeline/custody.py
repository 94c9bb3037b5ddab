"""The custody log: append-only events, each sealed with the hash of the one before.

Editing, deleting or inserting a row breaks the chain; :func:`check_chain` names the first event
where it breaks. Appends are serialized (SQLite's write lock, a PostgreSQL advisory lock) and
``prev_hash`` is unique, so concurrent writers can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session, col, select

from pipeline.catalog.db import LOCK_CUSTODY, insert_rows
from pipeline.catalog.models import CustodyEvent
from pipeline.catalog.types import utcnow

GENESIS = "0" * 64
# Built once: ``json.dumps`` with options makes a new encoder per call, which shows when a batch
# records thousands of events. The output is the same.
_DETAILS = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
_SEAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def canonical_json(details: dict[str, Any]) -> str:
    return _DETAILS.encode(details)


def event_hash(
    *, at: datetime, actor: str, action: str, target: str, tool: str | None, details: str, prev_hash: str
) -> str:
    sealed = _SEAL.encode([at.isoformat(timespec="microseconds"), actor, action, target, tool, details, prev_hash])
    return hashlib.sha256(sealed.encode("utf-8")).hexdigest()


class CustodyLog:
    """Appends events inside the caller's transaction, so each commits with the change it records.

    The lock and the chain head are taken once per transaction, and the events are inserted
    together, in chain order, when the ``with`` block ends or, at the latest, when the session commits.
    """

    def __init__(self, session: Session, actor: str) -> None:
        self.session = session
        self.actor = actor
        self._head: str | None = None
        self._rows: list[dict[str, Any]] = []
        event.listen(session, "before_commit", lambda _session: self.flush())

    def __enter__(self) -> CustodyLog:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.flush()

    def _current_head(self) -> str:
        if self._head is None:
            if self.session.get_bind().dialect.name == "postgresql":
                self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_CUSTODY})
            last = self.session.exec(select(CustodyEvent.hash).order_by(col(CustodyEvent.seq).desc()).limit(1)).first()
            self._head = last or GENESIS
        return self._head

    def record(
        self,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        *,
        tool: str | None = None,
        actor: str | None = None,
    ) -> str:
        """Seal one event onto the chain; returns its hash."""
        prev_hash = self._current_head()
        at = utcnow()
        who = actor or self.actor
        body = canonical_json(details or {})
        sealed = event_hash(
            at=at, actor=who, action=action, target=target, tool=tool, details=body, prev_hash=prev_hash
        )
        self._rows.append(
            {
                "at": at,
                "actor": who,
                "action": action,
                "target": target,
                "tool": tool,
                "details": body,
                "prev_hash": prev_hash,
                "hash": sealed,
            }
        )
        self._head = sealed
        return sealed

    def flush(self) -> None:
        """Insert the events recorded so far (one statement; rows keep their order, so ``seq``
        follows the chain)."""
        if self._rows:
            insert_rows(self.session, CustodyEvent, self._rows)
            self._rows = []


@dataclass(frozen=True)
class ChainReport:
    events: int
    head: str
    broken_at: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _events(session: Session, batch: int = 5000) -> Iterator[CustodyEvent]:
    last_seq = -1
    while True:
        rows = session.exec(
            select(CustodyEvent).where(col(CustodyEvent.seq) > last_seq).order_by(col(CustodyEvent.seq)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq  # type: ignore[assignment]


def check_chain(session: Session) -> ChainReport:
    """Walk the whole log; report the first event whose seal or link does not hold."""
    prev = GENESIS
    count = 0
    for row in _events(session):
        seq = row.seq or 0
        if row.prev_hash != prev:
            return ChainReport(
                count,
                prev,
                seq,
                "link to the previous event is broken (an event was deleted, inserted or reordered before this one)",
            )
        expected = event_hash(
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            tool=row.tool,
            details=row.details,
            prev_hash=row.prev_hash,
        )
        if expected != row.hash:
            return ChainReport(count, prev, seq, "contents do not match the event's seal (the row was edited)")
        prev = row.hash
        count += 1
    return ChainReport(count, prev)


def events_for(session: Session, target: str) -> list[CustodyEvent]:
    return list(
        session.exec(select(CustodyEvent).where(CustodyEvent.target == target).order_by(col(CustodyEvent.seq))).all()
    )
