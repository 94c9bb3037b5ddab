"""Content-addressed object stores. ``ObjectStore`` is the interface; ``LocalStore`` keeps objects
under the data directory; ``S3Store`` keeps them in an S3 bucket under Object Lock (imported on first
use: boto3 takes a tenth of a second to load, which commands that never touch S3 do not pay)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.storage.base import ObjectStore, StoredObject
from pipeline.storage.local import LocalStore

if TYPE_CHECKING:
    from pipeline.storage.s3 import ObjectLockedError, S3Store

__all__ = ["LocalStore", "ObjectLockedError", "ObjectStore", "S3Store", "StoredObject"]


def __getattr__(name: str) -> Any:
    if name in ("S3Store", "ObjectLockedError"):
        from pipeline.storage import s3

        return getattr(s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
