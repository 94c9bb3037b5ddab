"""Finding arrivals: which files under a path are candidates, and which dock each belongs to."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.ingest.intake import Arrival
from pipeline.stage.names import is_temporary

DEFAULT_DOCK = "manual"
INBOX_ROOT_DOCK = "unassigned"


@dataclass(frozen=True)
class Skipped:
    path: bytes
    reason: str


def dock_of(path: bytes, inbox: bytes) -> str | None:
    """The dock a path under the inbox belongs to (its first folder), or None outside the inbox."""
    if not path.startswith(inbox + b"/"):
        return None
    rest = path[len(inbox) + 1 :]
    first, sep, _ = rest.partition(b"/")
    return os.fsdecode(first) if sep else INBOX_ROOT_DOCK


def walk(path: bytes, patterns: Sequence[str]) -> Iterator[bytes | Skipped]:
    """Every file at or below ``path``; temporary names and hidden folders come back as Skipped."""
    if not os.path.isdir(path):
        name = os.path.basename(path)
        if is_temporary(name, patterns):
            yield Skipped(path, "temporary name: ignored until it is renamed")
        else:
            yield path
        return
    for top, dirs, files in os.walk(path, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not is_temporary(d, patterns))
        for name in sorted(files):
            full = os.path.join(top, name)
            if is_temporary(name, patterns):
                yield Skipped(full, "temporary name: ignored until it is renamed")
            else:
                yield full


def arrival_for(path: bytes, *, inbox: Path, dock: str | None, policy: str, external_policy: str) -> Arrival:
    """Files in a dock folder follow the dock policy; files from elsewhere the external one."""
    inbox_raw = os.fsencode(inbox)
    absolute = os.path.abspath(path)
    in_dock = dock_of(absolute, inbox_raw)
    return Arrival(
        path=absolute,
        dock=dock or in_dock or DEFAULT_DOCK,
        policy=policy if in_dock is not None else external_policy,
    )
