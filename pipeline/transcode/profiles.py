"""Transcode profiles: which derivatives are made from an original and with which parameters.

Profiles are data (``config/transcode_profiles.toml``), not code, so a site can change a quality
setting without a release. Each profile has a ``name`` and a ``version`` recorded with every
derivative it makes, a ``kind`` saying what it makes, the media kinds it ``applies_to``, and the
parameters of its kind; every parameter has a default and unknown ones are refused, so a typo is
an error rather than a silently ignored setting. A parameter added later has a default that a
profiles file written before it still loads with. Loading reports every mistake at once, naming the
file and the profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pipeline.config import CONFIG_DIR, ConfigFileError, read_toml
from pipeline.transcode.errors import ProfileError

DEFAULT_TRANSCODE_PROFILES = CONFIG_DIR / "transcode_profiles.toml"

MEDIA_KINDS = frozenset(["video", "audio", "image"])
PRESERVATION = "preservation-master"

# kind -> parameter -> default; the default's type is the type the parameter must have
# (an int is accepted where a float is expected).
KINDS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "video-access": {
            "remux": True,
            "remux_hevc": False,
            "crf": 23,
            "preset": "veryfast",
            "max_width": 1920,
            "max_height": 1080,
            "audio_bitrate": "128k",
            "duration_tolerance": 0.5,
            "duration_tolerance_percent": 2.0,
        },
        "audio-access": {
            "format": "m4a",
            "audio_bitrate": "128k",
            "duration_tolerance": 0.5,
            "duration_tolerance_percent": 2.0,
        },
        "image-access": {"max_dimension": 2048, "quality": 3},
        "poster": {"position": 0.1, "short_clip": 2.0, "max_dimension": 640, "quality": 3},
        "contact-sheet": {"columns": 4, "rows": 4, "cell_width": 320, "font_size": 16, "quality": 3},
        "waveform": {"width": 1600, "height": 240, "color": "0x1f6fb2"},
        PRESERVATION: {"slices": 4},
    }
)
# Allowed values where only a few make sense.
CHOICES: Mapping[tuple[str, str], frozenset[str]] = MappingProxyType(
    {
        ("audio-access", "format"): frozenset(["m4a", "mp3"]),
        ("video-access", "preset"): frozenset(
            ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
        ),
    }
)
# File name extension of what each kind makes (audio-access: its format).
EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {
        "video-access": "mp4",
        "image-access": "jpg",
        "poster": "jpg",
        "contact-sheet": "jpg",
        "waveform": "png",
        PRESERVATION: "mkv",
    }
)
_RESERVED = frozenset(["name", "version", "kind", "applies_to"])


@dataclass(frozen=True)
class Profile:
    name: str
    version: int
    kind: str  # one of KINDS
    applies_to: frozenset[str]  # media kinds: video | audio | image
    # Every parameter of the kind, defaults filled in.
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    @property
    def extension(self) -> str:
        """The file name extension of what this profile makes, without the dot."""
        if self.kind == "audio-access":
            return str(self.params["format"])
        return EXTENSIONS[self.kind]

    @property
    def label(self) -> str:
        """``name@version``, as recorded with each derivative."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class TranscodeConfig:
    profiles: Mapping[str, Profile]
    preservation: frozenset[str] = frozenset()  # media kinds that also get a preservation master

    def for_media_kind(self, media_kind: str) -> tuple[Profile, ...]:
        """The profiles to run for an original of this kind, in file order; a preservation master only
        when the policy lists the kind."""
        return tuple(
            profile
            for profile in self.profiles.values()
            if media_kind in profile.applies_to and (profile.kind != PRESERVATION or media_kind in self.preservation)
        )


def load_profiles(path: Path = DEFAULT_TRANSCODE_PROFILES) -> dict[str, Profile]:
    """The profiles in ``path`` by name, in file order. Raises :class:`ProfileError`."""
    return dict(load_transcode_config(path).profiles)


def load_transcode_config(path: Path = DEFAULT_TRANSCODE_PROFILES) -> TranscodeConfig:
    """Read and check ``path``: every profile and the ``[policy]`` table.

    Raises :class:`ProfileError` naming the file and every mistake, by profile.
    """
    try:
        data = read_toml(path)
    except ConfigFileError as exc:
        raise ProfileError(path, [exc.reason]) from exc

    details: list[str] = []
    unknown_tables = sorted(set(data) - {"profile", "policy"})
    if unknown_tables:
        details.append(f"unknown table(s) {', '.join(unknown_tables)}; expected [[profile]] and [policy]")
    entries = data.get("profile", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise ProfileError(path, ["profiles must be [[profile]] tables"])
    if not entries:
        details.append("no [[profile]] is defined")
    profiles: dict[str, Profile] = {}
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        profile, problems = _profile(entry, number)
        details.extend(problems)
        name = entry.get("name")
        if isinstance(name, str) and name in seen:
            details.append(f'profile "{name}": the name is used twice')
            continue
        seen.add(str(name))
        if profile is not None:
            profiles[profile.name] = profile
    preservation = _policy(data.get("policy", {}), details)
    if details:
        raise ProfileError(path, details)
    return TranscodeConfig(MappingProxyType(profiles), preservation)


def _profile(entry: dict[str, Any], number: int) -> tuple[Profile | None, list[str]]:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, [f"profile {number}: name is missing or not text"]
    where = f'profile "{name}"'
    problems: list[str] = []
    version = entry.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"{where}: version must be a whole number of at least 1, not {version!r}")
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        problems.append(f"{where}: kind {kind!r} is unknown; expected one of {', '.join(sorted(KINDS))}")
        return None, problems
    applies = entry.get("applies_to")
    if not isinstance(applies, list) or not applies or not all(item in MEDIA_KINDS for item in applies):
        problems.append(f"{where}: applies_to must list media kinds from {', '.join(sorted(MEDIA_KINDS))}")
        applies = []
    defaults = KINDS[kind]
    params = dict(defaults)
    for key, value in entry.items():
        if key in _RESERVED:
            continue
        if key not in defaults:
            problems.append(f"{where}: unknown parameter {key!r} for kind {kind}; known: {', '.join(defaults)}")
            continue
        problem = _check(kind, key, value, defaults[key])
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        params[key] = float(value) if isinstance(defaults[key], float) else value
    if problems or not isinstance(version, int):
        return None, problems
    return Profile(name, version, kind, frozenset(applies), MappingProxyType(params)), []


def _check(kind: str, key: str, value: Any, default: Any) -> str | None:
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{key} must be true or false, not {value!r}"
    if isinstance(default, str):
        if not isinstance(value, str) or not value:
            return f"{key} must be text, not {value!r}"
        choices = CHOICES.get((kind, key))
        if choices is not None and value not in choices:
            return f"{key} {value!r} is not one of {', '.join(sorted(choices))}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} must be a number, not {value!r}"
    if isinstance(default, int) and not isinstance(value, int):
        return f"{key} must be a whole number, not {value!r}"
    if value < 0 or (value == 0 and key not in ("crf", "position", "short_clip", "duration_tolerance")):
        return f"{key} must be positive, not {value!r}"
    if key == "position" and value > 1:
        return f"position is a fraction of the duration (0 to 1), not {value!r}"
    return None


def _policy(policy: Any, details: list[str]) -> frozenset[str]:
    if not isinstance(policy, dict):
        details.append("[policy] must be a table")
        return frozenset()
    unknown = sorted(set(policy) - {"preservation"})
    if unknown:
        details.append(f"[policy]: unknown setting(s) {', '.join(unknown)}")
    kinds = policy.get("preservation", [])
    if not isinstance(kinds, list) or not all(item in MEDIA_KINDS for item in kinds):
        details.append(f"[policy]: preservation must list media kinds from {', '.join(sorted(MEDIA_KINDS))}")
        return frozenset()
    return frozenset(kinds)
