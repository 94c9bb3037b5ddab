"""The archive stage: replicate originals from the local store to the S3 store (``EVIDENCE_STORE=local+s3``)."""

from pipeline.archive.stage import (
    STAGE,
    ArchiveContext,
    ArchiveResult,
    archive,
    archive_pending,
    due_archive,
    items_to_archive,
    queue_archive,
)

__all__ = [
    "STAGE",
    "ArchiveContext",
    "ArchiveResult",
    "archive",
    "archive_pending",
    "due_archive",
    "items_to_archive",
    "queue_archive",
]
