"""What the package stage is given: besides the catalog, the store of originals and who acts, where
images go and how they are laid out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline.stage.context import StageContext
from pipeline.storage.local import LocalStore


@dataclass(frozen=True)
class PackageContext(StageContext[LocalStore]):
    zone: ZoneInfo
    packages_dir: Path
    margin: float = 0.03
    access_extensions: Mapping[str, str] = field(default_factory=dict)  # derivative profile -> extension
