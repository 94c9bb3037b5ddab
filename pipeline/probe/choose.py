"""Choosing one value per fact from candidates that may disagree, and saying why.

Every candidate keeps its source (``exif:…``, ``ffprobe:…``, ``bext:…``, ``filename:<profile>``,
``config:devices``, ``config:docks``, ``manual:<actor>``). For each field the source families are
ranked; a custodian's manual value always wins. Times without a zone are read in the site's zone
and stored in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

# Earlier families win. Device metadata with an explicit offset beats names typed by the device.
PRECEDENCE: Mapping[str, tuple[str, ...]] = {
    "captured_at": ("manual", "exif", "ffprobe", "bext", "exiftool", "filename"),
    "captured_place": ("manual", "exif", "ffprobe", "exiftool", "config:docks", "location"),
    "collector": ("manual", "filename", "config:devices", "config:docks", "exif", "ffprobe", "exiftool", "bext"),
    "case_number": ("manual", "exiftool", "ffprobe", "bext"),
    "proof_object": ("manual", "exiftool", "ffprobe", "bext"),
    "location": ("manual", "exif", "ffprobe", "exiftool"),
}


@dataclass(frozen=True)
class Candidate:
    field: str
    value: Any
    source: str


@dataclass(frozen=True)
class Choice:
    field: str
    value: Any
    source: str
    reason: str


@dataclass(frozen=True)
class Directory:
    """What config says about devices and docks (``config/devices.toml``)."""

    device_officers: Mapping[str, str]
    dock_places: Mapping[str, str]
    dock_officers: Mapping[str, str]


def _family(source: str, families: Sequence[str]) -> int:
    for index, family in enumerate(families):
        if source == family or source.startswith(family + ":"):
            return index
    return len(families)


def parse_time(value: str, zone: ZoneInfo) -> datetime | None:
    """An ISO 8601 time; naive values are read in ``zone``. None when it cannot be read."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def derived(candidates: Iterable[Candidate], *, dock: str, directory: Directory) -> list[Candidate]:
    """Candidates implied by others or by config: the officer of a device or a file name, a
    dock's place, a place written from GPS coordinates."""
    out: list[Candidate] = []
    for candidate in candidates:
        if candidate.field == "officer_id" and candidate.value:
            out.append(Candidate("collector", str(candidate.value), candidate.source))
        elif candidate.field == "device_serial" and str(candidate.value) in directory.device_officers:
            out.append(Candidate("collector", directory.device_officers[str(candidate.value)], "config:devices"))
        elif candidate.field == "location" and isinstance(candidate.value, dict):
            lat, lon = candidate.value.get("lat"), candidate.value.get("lon")
            if lat is not None and lon is not None:
                out.append(Candidate("captured_place", f"GPS {lat:.6f}, {lon:.6f}", f"location:{candidate.source}"))
    if dock in directory.dock_places:
        out.append(Candidate("captured_place", directory.dock_places[dock], "config:docks"))
    if dock in directory.dock_officers:
        out.append(Candidate("collector", directory.dock_officers[dock], "config:docks"))
    return out


def choose(candidates: Sequence[Candidate], zone: ZoneInfo) -> dict[str, Choice]:
    """The value in force for each field, with the reason it won."""
    chosen: dict[str, Choice] = {}
    for field, families in PRECEDENCE.items():
        usable = [c for c in candidates if c.field == field and c.value not in (None, "")]
        if field == "captured_at":
            usable = [c for c in usable if parse_time(c.value, zone) is not None]
        if not usable:
            continue
        best = min(usable, key=lambda c: _family(c.source, families))
        others = sorted({c.source for c in usable if c is not best and c.value != best.value})
        reason = f"{best.source} ranks first for {field}"
        if others:
            reason += f"; disagreeing: {', '.join(others)}"
        value = best.value
        if field == "captured_at":
            value = parse_time(best.value, zone)
        chosen[field] = Choice(field, value, best.source, reason)
    return chosen


def clock_drift(
    candidates: Sequence[Candidate],
    chosen: Mapping[str, Choice],
    received_at: datetime | None,
    zone: ZoneInfo,
    tolerance: float,
) -> str | None:
    """Why the device clock looks wrong, or None: the device's time and the file name's time
    disagree, or the recording claims to end after it arrived."""
    times = {
        c.source: t for c in candidates if c.field == "captured_at" and (t := parse_time(c.value, zone)) is not None
    }
    named = {s: t for s, t in times.items() if s.startswith("filename")}
    device = {s: t for s, t in times.items() if not s.startswith(("filename", "manual"))}
    for nsource, ntime in named.items():
        for dsource, dtime in device.items():
            gap = abs((ntime - dtime).total_seconds())
            if gap > tolerance:
                return f"{dsource} and {nsource} disagree by {gap:.0f} s"
    capture = chosen.get("captured_at")
    if capture is not None and received_at is not None:
        ahead = (capture.value - received_at).total_seconds()
        if ahead > tolerance:
            return f"captured {ahead:.0f} s after it was received (device clock ahead)"
    return None
