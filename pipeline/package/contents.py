"""What goes on a disc: the files, the items they belong to, and the facts the description states."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DiscFile:
    """One file on a disc: its path there (POSIX, relative to the disc's root) and where its bytes come
    from, a file on this machine or content made for the disc."""

    disc_path: str
    size: int
    sha256: str
    source: Path | None = None
    content: bytes | None = None


@dataclass(frozen=True)
class AccessCopy:
    disc_path: str
    profile: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ItemEntry:
    """One original on a disc, with the five facts the regulation requires (``None`` when unknown)
    and its class."""

    item_id: str
    disc_path: str
    original_name: str
    media_kind: str
    size: int
    sha256: str
    case_number: str | None
    captured_at: datetime | None  # UTC
    captured_place: str | None
    collector: str | None
    proof_object: str | None
    access_copies: tuple[AccessCopy, ...] = ()
    classification: str = "none"  # its own or its case's, whichever is stricter


@dataclass(frozen=True)
class DiscInfo:
    """The facts one disc describes about itself."""

    package_id: str
    case_number: str
    target: str | None
    producer: str
    produced_at: datetime  # UTC
    zone: ZoneInfo
    disc_index: int  # 1-based
    disc_count: int
    label: str
    media: str
    items: tuple[ItemEntry, ...] = field(default_factory=tuple)
