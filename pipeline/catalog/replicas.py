"""Catalog table of the stored copies of an original beyond the one intake made: one row per item
and store (``local``, ``s3``), with the copy's key, its size, when it was last verified and what that
found. Times are UTC.

The copy intake made in the store it wrote to is implied by the item row itself (verified by
intake's read-back at ``Item.created_at``, and by each fixity check since, ``Item.fixity_checked_at``)
until a stage records a row for it: a catalog made before this table holds no rows, and none are
written for it (migration 0011). A row is written by the stage that verified the copy: the archive
stage (the S3 copy it sent and read back, and the local copy it read and hashed) and fixity.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from pipeline.catalog.types import BigInt, UTCDateTime, utcnow


class ReplicaStatus(StrEnum):
    """What the last verification of a copy found (``Replica.status``): whole, altered, or gone."""

    OK = "ok"
    BAD = "bad"
    MISSING = "missing"


class Replica(SQLModel, table=True):
    """One stored copy of an item's original in one store, as last verified."""

    __table_args__ = (UniqueConstraint("item_id", "store"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    store: str = Field(max_length=16, index=True)  # the store's name: local | s3
    key: str = Field(max_length=255)
    size: int = Field(sa_type=BigInt)
    verified_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: str = Field(default=ReplicaStatus.OK, max_length=16)
