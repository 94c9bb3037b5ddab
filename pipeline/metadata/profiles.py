"""File-name profiles: what the names cameras give their files say about the recording.

Profiles are data (``config/filename_patterns.toml``), not code, so a site can add its cameras'
naming without a release. Each profile is a regular expression whose named groups are fact fields.
Loading checks every profile and reports all mistakes at once, naming the file and the profile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline.config import CONFIG_DIR, ConfigFileError, read_toml
from pipeline.errors import PipelineError

DEFAULT_FILENAME_PATTERNS = CONFIG_DIR / "filename_patterns.toml"

# Named groups a pattern may use; groups whose name starts with "_" are helpers and are ignored.
TEXT_GROUPS = frozenset(
    ["device_serial", "officer_id", "make", "model", "case_number", "proof_object", "captured_place"]
)
TIME_GROUP = "captured_at"  # parsed with the profile's time_format
INTEGER_GROUPS = frozenset(["sequence"])
FLAG_GROUPS = frozenset(["important"])  # true when the group took part in the match
KNOWN_GROUPS = TEXT_GROUPS | INTEGER_GROUPS | FLAG_GROUPS | {TIME_GROUP}


class FilenamePatternError(PipelineError):
    """The file-name profiles file cannot be used; ``details`` lists every mistake found."""

    def __init__(self, path: str | Path, details: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(details))
        self.path = str(path)
        self.details = details


@dataclass(frozen=True)
class FilenameProfile:
    name: str  # shown in fact sources as "filename:<name>"
    vendor: str
    pattern: re.Pattern[str]  # must match the whole name (folders removed)
    time_format: str | None = None  # strptime format of the captured_at group
    description: str = ""

    def fields(self) -> frozenset[str]:
        return frozenset(name for name in self.pattern.groupindex if not name.startswith("_"))


def load_filename_profiles(path: Path = DEFAULT_FILENAME_PATTERNS) -> tuple[FilenameProfile, ...]:
    """Read and check the profiles in ``path``, in file order.

    Raises :class:`FilenamePatternError` naming the file and every broken profile.
    """
    try:
        data = read_toml(path)
    except ConfigFileError as exc:
        raise FilenamePatternError(path, [exc.reason]) from exc

    entries = data.get("profile", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise FilenamePatternError(path, ["profiles must be [[profile]] tables"])
    profiles: list[FilenameProfile] = []
    details: list[str] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        profile, problems = _profile(entry, number)
        details.extend(problems)
        if profile is None:
            continue
        if profile.name in seen:
            details.append(f'profile "{profile.name}": the name is used twice')
        seen.add(profile.name)
        profiles.append(profile)
    if details:
        raise FilenamePatternError(path, details)
    return tuple(profiles)


def _profile(entry: dict[str, Any], number: int) -> tuple[FilenameProfile | None, list[str]]:
    name = entry.get("name")
    label = f'profile "{name}"' if isinstance(name, str) and name else f"profile #{number}"
    problems: list[str] = []
    unknown_keys = sorted(set(entry) - {"name", "vendor", "pattern", "time_format", "description"})
    if unknown_keys:
        problems.append(f"{label}: unknown key(s) {', '.join(unknown_keys)}")
    for key in ("name", "vendor", "pattern"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            problems.append(f"{label}: {key} is required and must be text")
    time_format = entry.get("time_format")
    if time_format is not None and (not isinstance(time_format, str) or not time_format):
        problems.append(f"{label}: time_format must be text")
        time_format = None
    description = entry.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{label}: description must be text")
    if problems:
        return None, problems

    try:
        pattern = re.compile(entry["pattern"])
    except re.error as exc:
        return None, [f"{label}: pattern does not compile: {exc}"]
    groups = set(pattern.groupindex)
    unknown_groups = sorted(g for g in groups - KNOWN_GROUPS if not g.startswith("_"))
    if unknown_groups:
        problems.append(
            f"{label}: unknown group name(s) {', '.join(unknown_groups)} "
            f"(known: {', '.join(sorted(KNOWN_GROUPS))}; start helper groups with _)"
        )
    if TIME_GROUP in groups and time_format is None:
        problems.append(f"{label}: the {TIME_GROUP} group needs a time_format")
    if time_format is not None and not _round_trips(time_format):
        problems.append(f"{label}: time_format {time_format!r} cannot read back the times it writes")
    if problems:
        return None, problems
    return FilenameProfile(entry["name"], entry["vendor"], pattern, time_format, description), []


def _round_trips(time_format: str) -> bool:
    sample = datetime(2025, 9, 30, 14, 30, 15, tzinfo=timezone(timedelta(hours=8)))
    try:
        return datetime.strptime(sample.strftime(time_format), time_format) is not None
    except ValueError:
        return False
