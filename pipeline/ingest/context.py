"""What every part of intake shares: the context it runs in, the result it reports for each
sighting, and the record of one file's progress through a batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.stage.context import StageContext
from pipeline.storage.base import ObjectStore, StoredObject
from pipeline.storage.transfer import Transfer


@dataclass(frozen=True)
class IntakeContext(StageContext[ObjectStore]):
    """Everything intake needs; built once from the settings by the caller."""

    inbox_dir: Path
    processed_dir: Path
    quarantine_dir: Path
    algorithms: tuple[str, ...] = ()
    lease_seconds: float = 60.0
    quiet_period: float = 5.0  # the reconciler retries a file that changed only once it is quiet again
    stale_after: float = 300.0  # queued but never started for this long: queue it again
    # Uploads received in full lie here: files of the pipeline's own, which nobody writes to again,
    # so the store adopts them (links them, once verified) instead of copying them.
    uploads_dir: Path | None = None

    def owns(self, path: bytes) -> bool:
        """Whether the source at ``path`` is one of the pipeline's own files (an upload's)."""
        return self.uploads_dir is not None and os.path.dirname(path) == os.fsencode(self.uploads_dir)


@dataclass(frozen=True)
class IntakeResult:
    sighting: str | None
    path: str
    dock: str
    status: str  # stored | duplicate | ignored | failed | pending | busy
    item: str | None = None
    sha256: str | None = None
    size: int | None = None
    error: str | None = None
    disposition: str | None = None
    disposed_path: str | None = None
    issues: tuple[str, ...] = ()  # codes from the probe stage, when it ran in the same command
    derivatives: tuple[str, ...] = ()  # "kind:status" from the derive stage, when it ran too

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "path": self.path,
            "dock": self.dock,
            "sighting": self.sighting,
            "item": self.item,
            "sha256": self.sha256,
            "size": self.size,
            "status": self.status,
            "disposition": self.disposition,
        }
        if self.disposed_path:
            data["disposed_path"] = self.disposed_path
        if self.error:
            data["error"] = self.error
        if self.issues:
            data["issues"] = list(self.issues)
        if self.derivatives:
            data["derivatives"] = list(self.derivatives)
        return data


@dataclass(frozen=True)
class Known:
    """What is known of an arriving file before intake reads it: the SHA-256 its sender declared
    (a file that differs fails), and its digests as read back from the file once it lay on disk
    (an upload's, read piece by piece as it arrived: the store need not read it again)."""

    sha256: str | None = None
    read_back: Transfer | None = None


@dataclass
class Work:
    """One sighting's progress through a batch."""

    id: str
    path: bytes
    shown: str
    dock: str
    policy: str
    stored: StoredObject | None = None
    size: int = 0
    mtime_ns: int = 0
    name: bytes = b""  # the original name: given with the sighting, else the source path's last part
    known: Known = Known()
    failure: str | None = None  # the file's fault (or a defect): recorded as failed
    system: str | None = None  # the store's fault: the sighting stays pending and is tried again
    quarantine: bool = False
    changed: bool = False
    result: IntakeResult | None = None
    disposed_to: bytes | None = None
