"""Catalog tables. Keys are ULIDs (time-ordered strings); times are UTC."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, String, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from pipeline.catalog.types import BigInt, UTCDateTime, new_id, utcnow


class SightingStatus(StrEnum):
    PENDING = "pending"
    STORED = "stored"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    IGNORED = "ignored"


# A sighting in one of these has been decided; only its source may still wait to be disposed of.
FINAL_SIGHTING = frozenset(
    {SightingStatus.STORED, SightingStatus.DUPLICATE, SightingStatus.FAILED, SightingStatus.IGNORED}
)


class Disposition(StrEnum):
    PENDING = "pending"
    MOVED = "moved"
    DELETED = "deleted"
    KEPT = "kept"
    QUARANTINED = "quarantined"
    GONE = "gone"


class StageStatus(StrEnum):
    """A stage's state for one item (``StageRun.status``): to do (or to try again after a system
    fault), done, or failed (the reconciler leaves it until a person retries it)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class DerivativeStatus(StrEnum):
    """A derivative's state (``Derivative.status``): being made, verified and stored, failed with its
    reason, or pending again after a system fault stopped it."""

    PENDING = "pending"
    RUNNING = "running"
    VERIFIED = "verified"
    FAILED = "failed"


class PackageStatus(StrEnum):
    """A package request's state (``Package.status``)."""

    REQUESTED = "requested"
    BUILDING = "building"
    VERIFIED = "verified"
    FAILED = "failed"


class FixityOutcome(StrEnum):
    """What a fixity check found (``FixityCheck.outcome``, ``Item.fixity_status``): the object whole,
    altered, missing or unreadable, or a defect met while checking it."""

    OK = "ok"
    MISMATCH = "mismatch"
    MISSING = "missing"
    ERROR = "error"


class Dock(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# The five facts the regulation requires of every record, as columns of ``Item``.
REQUIRED_FACTS = ("case_number", "captured_at", "captured_place", "collector", "proof_object")


def _where(sqlite: str, postgresql: str | None = None) -> dict[str, Any]:
    """A partial index's condition, as each database writes it (so its planner matches queries)."""
    return {"sqlite_where": text(sqlite), "postgresql_where": text(postgresql or sqlite)}


class Item(SQLModel, table=True):
    """One piece of evidence: one unique content, however often it arrived."""

    # The scheduled fixity check takes the items checked (or taken in) longest ago first; the
    # listing, its keyset pages, the review queues and the overdue report read the others
    # (migration 0008, which also makes the free-text search's index).
    __table_args__ = (
        Index("ix_item_fixity_due", text("coalesce(fixity_checked_at, created_at)"), "id"),
        Index("ix_item_created_id", "created_at", "id"),
        Index("ix_item_collector_captured", "collector", "captured_at"),
        Index("ix_item_unclassified", "created_at", "id", **_where("classification = 'unclassified'")),
        Index("ix_item_case_class", "case_number", "classification"),
        # The unclassified queue's count (migration 0010).
        Index(
            "ix_item_unclassified_case", "case_number", "classification", **_where("classification = 'unclassified'")
        ),
        *(
            Index(f"ix_item_missing_{fact}", "created_at", "id", **_where(f"{fact} IS NULL"))
            for fact in ("case_number", "captured_at", "captured_place", "collector", "proof_object")
        ),
        Index("ix_item_late_created", "created_at", "id", **_where("late IS 1", "late IS true")),
        Index("ix_item_overdue", "collector", "dock_id", "captured_at", "id", **_where("late IS 1", "late IS true")),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    sha256: str = Field(max_length=64, unique=True, index=True)
    size: int = Field(sa_type=BigInt)
    digests: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    original_name: str = Field(sa_type=Text)
    original_name_raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    media_kind: str = Field(max_length=16)
    dock_id: str = Field(foreign_key="dock.id", max_length=255, index=True)
    status: str = Field(default="stored", max_length=32, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    fixity_status: str | None = Field(default=None, max_length=16)
    fixity_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The five facts the regulation requires, as chosen from the candidates in ItemFact.
    case_number: str | None = Field(default=None, max_length=100, index=True)
    captured_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    capture_tz: str | None = Field(default=None, max_length=64)
    captured_place: str | None = Field(default=None, sa_type=Text)
    collector: str | None = Field(default=None, max_length=100, index=True)
    proof_object: str | None = Field(default=None, sa_type=Text)
    # Deadline: end of the N-th working day after capture; late uploads are flagged, never refused.
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deadline_provisional: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    late: bool | None = Field(default=None, index=True)
    working_days_late: int | None = None
    review_status: str = Field(
        default="pending-review", max_length=32, sa_column_kwargs={"server_default": "pending-review"}
    )
    classification: str = Field(
        default="unclassified", max_length=32, sa_column_kwargs={"server_default": "unclassified"}
    )
    media: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))


class Case(SQLModel, table=True):
    """A case file; its enforcement target (person or company) groups every record about them."""

    __table_args__ = (Index("ix_case_classification", "classification", "number"),)

    number: str = Field(primary_key=True, max_length=100)
    target: str | None = Field(default=None, sa_type=Text, index=True)
    # Its records' class unless one of them is stricter (pipeline.catalog.people.Classification).
    classification: str = Field(default="none", max_length=32, sa_column_kwargs={"server_default": "none"})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ItemFact(SQLModel, table=True):
    """One candidate value for one field of one item, with where it came from. ``chosen`` marks the
    value in force; the others stay for review (sources that disagree)."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    field: str = Field(max_length=32)
    value: object = Field(sa_column=Column(JSON, nullable=True))
    source: str = Field(max_length=255)
    chosen: bool = False
    reason: str | None = Field(default=None, sa_type=Text)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ItemIssue(SQLModel, table=True):
    """An open problem with an item (missing fact, damaged media, late…); the work queue."""

    __table_args__ = (Index("ix_itemissue_code_item", "code", "item_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    code: str = Field(max_length=32, index=True)
    message: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Sighting(SQLModel, table=True):
    """One arrival of a file at a dock (or from the command line). Duplicates add sightings."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    dock_id: str = Field(foreign_key="dock.id", max_length=255, index=True)
    source_path: str = Field(sa_type=Text)
    source_path_raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    path_key: str = Field(max_length=64, index=True)  # sha256 of the raw path
    size: int = Field(sa_type=BigInt)
    mtime_ns: int = Field(sa_type=BigInt)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    status: str = Field(default=SightingStatus.PENDING, max_length=16, index=True)
    item_id: str | None = Field(default=None, foreign_key="item.id", max_length=26, index=True)
    error: str | None = Field(default=None, sa_type=Text)
    disposition: str = Field(default=Disposition.PENDING, max_length=16, index=True)
    disposed_path: str | None = Field(default=None, sa_type=Text)
    disposed_path_raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    source_policy: str = Field(default="move", max_length=8)
    # The name the file arrived under when its path does not say it (an upload's partial file): the
    # item's original name. None: the last part of the source path.
    original_name_raw: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # sha256 of the source path while the sighting is open; unique, so one path is never taken twice.
    active_key: str | None = Field(default=None, sa_column=Column(String(64), unique=True, nullable=True))
    lease_owner: str | None = Field(default=None, max_length=255)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    queued_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StageRun(SQLModel, table=True):
    """Status of one processing stage for one item; the reconciler reads these."""

    __table_args__ = (UniqueConstraint("item_id", "stage"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    stage: str = Field(max_length=32)
    status: str = Field(max_length=16, index=True)
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=Text)
    tool: str | None = Field(default=None, max_length=255)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustodyEvent(SQLModel, table=True):
    """Append-only, hash-chained. ``prev_hash`` is unique, so the chain can never fork."""

    seq: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    at: datetime = Field(sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=255)
    action: str = Field(max_length=64, index=True)
    target: str = Field(max_length=255, index=True)
    tool: str | None = Field(default=None, max_length=255)
    details: str = Field(sa_type=Text)
    prev_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))


class FixityCheck(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    outcome: str = Field(max_length=16)
    found_sha256: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_type=Text)


class Derivative(SQLModel, table=True):
    """A copy made from an item's original (access copy, poster, contact sheet, waveform, master),
    itself content-addressed in the store, with the result of its verification."""

    __table_args__ = (UniqueConstraint("item_id", "profile", "profile_version"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    kind: str = Field(max_length=32)
    profile: str = Field(max_length=64)
    profile_version: int
    status: str = Field(max_length=16, index=True)  # a DerivativeStatus
    progress: float = 0.0
    sha256: str | None = Field(default=None, max_length=64)
    size: int | None = Field(default=None, sa_type=BigInt)
    store_key: str | None = Field(default=None, sa_type=Text)
    verified: bool = False
    verification: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error: str | None = Field(default=None, sa_type=Text)
    tool: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Package(SQLModel, table=True):
    """A request for disc-ready images of a case's items: who asked, when, for what, and how it went."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    case_number: str = Field(max_length=100, index=True)
    item_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    requested_by: str = Field(max_length=255)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    purpose: str | None = Field(default=None, sa_type=Text)
    producer: str = Field(max_length=255)
    media: str = Field(max_length=16)
    capacity: int = Field(sa_type=BigInt)
    with_access_copies: bool = False
    out_dir: str = Field(sa_type=Text)
    status: str = Field(default=PackageStatus.REQUESTED, max_length=16, index=True)
    disc_count: int | None = None
    produced_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, sa_type=Text)
    tool: str | None = Field(default=None, max_length=255)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PackageDisc(SQLModel, table=True):
    """One image of a package, with its own hash and the outcome of reading it back."""

    __table_args__ = (UniqueConstraint("package_id", "disc_index"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    package_id: str = Field(foreign_key="package.id", max_length=26, index=True)
    disc_index: int
    label: str = Field(max_length=32)
    path: str = Field(sa_type=Text)
    size: int = Field(sa_type=BigInt)
    sha256: str = Field(max_length=64)
    file_count: int
    verified: bool = False
    verification: dict[str, object] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PackageFile(SQLModel, table=True):
    """One file on one disc of a package: an original, an access copy, or a description/manifest."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    package_id: str = Field(foreign_key="package.id", max_length=26, index=True)
    disc_index: int
    disc_path: str = Field(sa_type=Text)
    role: str = Field(max_length=16)  # original | access | description
    item_id: str | None = Field(default=None, foreign_key="item.id", max_length=26, index=True)
    size: int = Field(sa_type=BigInt)
    sha256: str = Field(max_length=64)


class UploadStatus(StrEnum):
    """An upload's state (``Upload.status``): bytes still arriving; taken in (an item, new or a
    duplicate); failed with its reason; ended by its uploader; or removed after lying idle."""

    RECEIVING = "receiving"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"
    EXPIRED = "expired"


class Upload(SQLModel, table=True):
    """A resumable upload over HTTP (tus): who sends it for which dock, its declared length and the
    offset up to which its partial file is durable, and what became of it. ``offset`` is recorded
    only after the bytes before it are on disk."""

    __table_args__ = (Index("ix_upload_owner_status", "owner", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    owner: str = Field(max_length=255)  # the viewer's name: a token's "token:<name>" or an account
    dock_id: str = Field(max_length=255)
    length: int = Field(sa_type=BigInt)
    offset: int = Field(default=0, sa_type=BigInt)
    original_name: str = Field(sa_type=Text)
    original_name_raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    declared_sha256: str | None = Field(default=None, max_length=64)
    media_type: str | None = Field(default=None, max_length=255)
    status: str = Field(default=UploadStatus.RECEIVING, max_length=16, index=True)
    sighting_id: str | None = Field(default=None, max_length=26)
    item_id: str | None = Field(default=None, max_length=26)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# The tables of the people who use the catalog live beside these; importing the models declares all.
from pipeline.catalog import people as people  # noqa: E402
from pipeline.catalog import replicas as replicas  # noqa: E402
