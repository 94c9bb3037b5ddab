"""The object-store protocol every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from pipeline.storage.transfer import Transfer

Heartbeat = Callable[[int], None]


@dataclass(frozen=True)
class StoredObject:
    sha256: str
    size: int
    key: str
    digests: dict[str, str] = field(default_factory=dict)
    head: bytes = b""  # the first bytes, for recognising the media type without another read
    existed: bool = False  # the store already held these bytes (a duplicate arrival)
    repaired: bool = False  # the store held a damaged copy under this digest; it was replaced


class ObjectStore(Protocol):
    name: str

    def put(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
        expect_sha256: str | None = None,
    ) -> StoredObject:
        """Copy from ``source_fd`` while hashing, verify the copy, file it under its SHA-256.

        ``durable=False`` leaves flushing to a later :meth:`sync` covering many objects. A source
        whose SHA-256 is not ``expect_sha256`` raises :class:`~pipeline.errors.DigestMismatch`
        and nothing is filed.
        """
        ...

    def adopt(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
        expect_sha256: str | None = None,
        read_back: Transfer | None = None,
    ) -> StoredObject | None:
        """File a file that is the pipeline's own (nobody writes to it again) without copying it,
        verified as :meth:`put` verifies (by ``read_back``, its digests read back from the file
        as it reached the disk, when given); None where this store cannot (then :meth:`put` it)."""
        ...

    def sync(self) -> None:
        """Make every object put so far durable."""
        ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def key(self, sha256: str) -> str: ...

    def digest(self, sha256: str) -> tuple[str, int]:
        """Re-read an object and return its SHA-256 and size as found now."""
        ...

    def objects(self) -> Iterator[str]: ...

    def remove_partials(self, older_than: float) -> int:
        """Delete temporary files left by writers that died; returns how many."""
        ...
