"""One base exception; subclasses carry the facts a person needs to act on the failure."""

from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class TransientError(PipelineError):
    """A system that should come back (broker, database, object store): retry with backoff."""


class IntakeError(PipelineError):
    """A file could not be taken in. ``path`` names it; the message says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SourceChangedError(IntakeError):
    """The file changed while it was being copied: it was not complete yet."""


class StoreError(PipelineError):
    """The object store could not write or read an object."""


class FixityError(PipelineError):
    """Stored bytes no longer match the digest recorded when they were taken in."""

    def __init__(self, path: str, expected: str, found: str | None) -> None:
        shown = found if found is not None else "missing"
        super().__init__(f"{path}: expected sha256 {expected}, found {shown}")
        self.path = path
        self.expected = expected
        self.found = found


class CustodyChainError(PipelineError):
    """The custody log's hash chain is broken at ``sequence``."""

    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"custody event {sequence}: {reason}")
        self.sequence = sequence
        self.reason = reason


class NotFoundError(PipelineError):
    """No catalog entry matches what was asked for."""
