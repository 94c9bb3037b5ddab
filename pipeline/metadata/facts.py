"""What extractors hand back: facts with their source, technical media information, and problems.

Every extractor reads one stored file and returns one :class:`Extraction`. A fact says where it came
from (``source``), so two tools that disagree about the capture time are both on record and the
catalog can choose by source, never by whichever ran last. Damaged or unreadable input is a
:class:`Problem` in the result, never an exception: a bad file must not stop intake of the others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.metadata.profiles import FilenameProfile

# Normalized fact fields. ``captured_at`` is ISO 8601, with the offset when the source gave one and
# naive when it did not (the caller applies the site's time zone); ``location`` is
# {"lat": float, "lon": float, "alt": float | None} in WGS 84 decimal degrees and metres.
FIELDS = frozenset(
    [
        "captured_at",
        "location",
        "device_serial",
        "officer_id",
        "make",
        "model",
        "important",
        "sequence",
        "captured_place",
        "case_number",
        "proof_object",
    ]
)


@dataclass(frozen=True)
class Fact:
    field: str  # one of FIELDS
    value: Any  # JSON-serializable
    source: str  # e.g. "ffprobe:format.tags.creation_time", "exif:EXIF DateTimeOriginal", "filename:cn-bodycam"

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "source": self.source}


@dataclass(frozen=True)
class Problem:
    code: str  # see the problem codes above
    message: str  # plain language, names the file

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class StreamInfo:
    index: int
    kind: str  # video | audio | subtitle | data | attachment
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration: float | None = None
    language: str | None = None
    frames: int | None = None  # how many frames (packets) it holds, when the container says or they were counted


@dataclass(frozen=True)
class MediaInfo:
    container: str | None  # the demuxer that read it, as ffprobe names it ("mov,mp4,m4a,3gp,3g2,mj2", "wav")
    duration: float | None  # seconds
    streams: tuple[StreamInfo, ...] = ()

    def of_kind(self, kind: str) -> tuple[StreamInfo, ...]:
        return tuple(stream for stream in self.streams if stream.kind == kind)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Extraction:
    extractor: str
    tool: str  # program and version, e.g. "ffprobe 5.1.6", "exifread 3.5.1"
    facts: tuple[Fact, ...] = ()
    media: MediaInfo | None = None
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def values(self, field: str) -> list[Any]:
        """Every value this extraction found for ``field``, in the order of its sources' priority."""
        return [fact.value for fact in self.facts if fact.field == field]

    def first(self, field: str) -> Fact | None:
        return next((fact for fact in self.facts if fact.field == field), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "extractor": self.extractor,
            "tool": self.tool,
            "facts": [fact.as_json() for fact in self.facts],
            "media": self.media.as_json() if self.media else None,
            "problems": [problem.as_json() for problem in self.problems],
        }


@dataclass(frozen=True)
class ExtractionContext:
    """What an extractor may know besides the bytes; built by the caller, never read from settings."""

    original_name: str  # the file's original (readable) name; stored objects are named by hash
    filename_profiles: tuple[FilenameProfile, ...] = ()
    timeout: float = 120.0  # seconds any one external program may run
    media_kind: str = "other"  # video | audio | image | other; extract_all sets it

    @property
    def shown_name(self) -> str:
        """The name used in problem messages: the original name without the folders it came from."""
        name = self.original_name.replace("\\", "/").rsplit("/", 1)[-1]
        return name or self.original_name or "(unnamed file)"


class Extractor(Protocol):
    @property
    def name(self) -> str: ...

    def accepts(self, media_kind: str, original_name: str) -> bool:
        """Whether this extractor has something to say about files of this kind and name."""
        ...

    def extract(self, path: Path, context: ExtractionContext) -> Extraction:
        """Read ``path``; never raise for bad input, report it as a :class:`Problem`."""
        ...


def unique(facts: Iterable[Fact]) -> tuple[Fact, ...]:
    """Facts with the same field and value kept once, from the first (most authoritative) source."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for fact in facts:
        key = (fact.field, json.dumps(fact.value, sort_keys=True))
        if key not in seen:
            seen.add(key)
            kept.append(fact)
    return tuple(kept)


def suffix_of(name: str) -> str:
    """The lower-case extension of a file name, without the dot ("" when there is none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base else ""
