"""What the package stage is given: the catalog, the store of originals, who acts, and where images go."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from pipeline.storage.local import LocalStore


@dataclass(frozen=True)
class PackageContext:
    engine: Engine
    store: LocalStore
    actor: str
    zone: ZoneInfo
    packages_dir: Path
    margin: float = 0.03
    access_extensions: Mapping[str, str] = field(default_factory=dict)  # derivative profile -> extension
