"""Recordable media and what fits on them.

Capacities are the user-data sectors of write-once media (2048 bytes each), taking the smaller of the
"-R" and "+R" formats so a plan fits either. A safety margin (setting ``package_margin``) keeps data off
the disc's outer edge, where archival guidance (DA/T 38, DA/T 74) expects the most read errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.package.errors import PackageError

SECTOR = 2048

MEDIA_SECTORS: dict[str, int] = {
    "cd": 359_846,  # CD-R 80 min, 700 MB
    "dvd": 2_295_104,  # DVD+R single layer, 4.7 GB
    "dvd-dl": 4_171_712,  # DVD-R dual layer, 8.5 GB
    "bd25": 12_219_392,  # BD-R single layer
    "bd50": 24_438_784,  # BD-R dual layer
    "bd100": 48_878_592,  # BD-R XL triple layer
}
MEDIA_NAMES = tuple(MEDIA_SECTORS)

# Room the file systems take besides the files themselves: volume descriptors, four directory trees
# (ISO 9660, Joliet, Rock Ridge in ISO 9660's, UDF) and UDF's file entries, plus the description,
# manifests and BagIt files that grow with the number of files.
BASE_OVERHEAD = 4 << 20
PER_FILE_OVERHEAD = 16 << 10


@dataclass(frozen=True)
class Medium:
    name: str
    capacity: int  # bytes the medium holds
    usable: int  # bytes a plan may fill, after the margin
    custom: bool = False  # a capacity given instead of the medium's own

    @property
    def description(self) -> str:
        if self.custom:
            return f"disc of {self.capacity:,} bytes"
        return f"{self.name} ({self.capacity / 1e9:.2f} GB)"


def medium(name: str, *, margin: float, capacity: int | None = None) -> Medium:
    """The medium called ``name``; ``capacity`` overrides its size (for tests and odd media)."""
    custom = capacity is not None
    if capacity is None:
        if name not in MEDIA_SECTORS:
            raise PackageError(f"unknown medium {name!r}; choose one of {', '.join(MEDIA_NAMES)}")
        capacity = MEDIA_SECTORS[name] * SECTOR
    if not 0 <= margin < 0.5:
        raise PackageError(f"the safety margin must be between 0 and 0.5, not {margin}")
    return Medium(name=name, capacity=capacity, usable=int(capacity * (1 - margin)), custom=custom)


def footprint(sizes: list[int]) -> int:
    """Bytes a group of files takes on a disc, their share of the file systems included."""
    return sum(-(-size // SECTOR) * SECTOR + PER_FILE_OVERHEAD for size in sizes)


def smallest_fitting(need: int, *, margin: float) -> Medium | None:
    for name in MEDIA_NAMES:
        candidate = medium(name, margin=margin)
        if need + BASE_OVERHEAD <= candidate.usable:
            return candidate
    return None


def parse_size(text: str) -> int:
    """``700MB``, ``4.7GB``, ``512MiB`` or a plain number of bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
    cleaned = text.strip().upper().replace(" ", "")
    number = cleaned.rstrip("KMGIB")
    unit = cleaned[len(number) :]
    if unit not in units:
        raise PackageError(f"cannot read the size {text!r}; write it like 700MB or 512MiB")
    try:
        return int(float(number) * units[unit])
    except ValueError as exc:
        raise PackageError(f"cannot read the size {text!r}; write it like 700MB or 512MiB") from exc
