"""ffprobe: container, duration and every stream of a recording, the times, places and devices its
tags name, and whether the file is whole (see :mod:`pipeline.metadata.integrity`).

By default no program runs per file: libavformat reads the file in-process through PyAV, in one long-running
child per worker (:mod:`pipeline.metadata.avprobe`), and answers in ffprobe's terms, so the facts,
their ``ffprobe:`` sources and the verdict on damage are the same as the programs give
(``engine="ffprobe"``, kept as the reference). Durations can differ where the FFmpeg PyAV bundles
measures time differently from the system's ffprobe (an MP3 without its encoder padding, say).

ffprobe is run directly rather than through ``ffmpeg.probe`` from ffmpeg-python 0.2.0: that function
turns its keyword arguments into ffprobe options, so ``timeout=120`` becomes ffprobe's network
``-timeout`` option and the process itself can run for ever on a hostile file. Strings are taken
as ffprobe read them (``string_validation=ignore``) and shown as UTF-8 or else GB18030, because
Chinese cameras write GBK into tags and ffprobe would otherwise garble them.

Tags read (names compared case-insensitively):

- times: ``com.apple.quicktime.creationdate`` (local time with offset), ``creation_time`` (QuickTime
  and MP4 headers: UTC by specification, though some cameras write local time there), ``date``
  when it is a full timestamp; stream ``creation_time`` when it differs from the container's.
- places: ``com.apple.quicktime.location.ISO6709``, ``location`` (ISO 6709), and
  ``com.apple.quicktime.location.name`` as the place name.
- devices: ``make``/``model`` and their ``com.apple.quicktime.*`` and ``com.android.*`` forms,
  ``serial_number``-like tags.
- Broadcast WAV: ffmpeg's wav demuxer renames the ``bext`` chunk's fields to generic tags
  (description → comment, originator → encoded_by, origination_date → date, origination_time →
  creation_time). A ``time_reference`` tag, which only the bext reader sets, shows they are bext and
  they are read back under their bext names: origination date and time → ``captured_at`` (naive,
  as BWF has no zone), originator (the recorder's name) → ``make``, and the recorder serial in an
  EBU R 99 ``originator_reference`` → ``device_serial``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.metadata.avprobe import PROGRAM as AV_PROGRAM
from pipeline.metadata.avprobe import AvReader, ReaderCrashedError, shared_reader
from pipeline.metadata.facts import (
    Extraction,
    ExtractionContext,
    Fact,
    MediaInfo,
    Problem,
    StreamInfo,
    suffix_of,
    unique,
)
from pipeline.metadata.geo import parse_iso6709
from pipeline.metadata.integrity import check_media, length_problems, packet_problems, readable_line
from pipeline.metadata.timestamps import combine, parse_timestamp
from pipeline.stage.issues import DAMAGED_MEDIA, TIMEOUT, TOOL_MISSING, UNREADABLE_METADATA, UNSUPPORTED_TYPE
from pipeline.stage.names import readable
from pipeline.stage.tools import ToolError, ToolMissingError, ToolRun, ToolTimeoutError, run_tool, tool_version

ENGINES = ("pyav", "ffprobe")  # in-process through PyAV (the default); the ffprobe and ffmpeg programs
_LIBAV = "libavformat"  # the program named in the in-process engine's messages
# Stills ffmpeg reads; HEIC/HEIF and DNG it does not, so those are left to exifread and exiftool.
STILLS = frozenset(["jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp"])

Parser = Callable[[str], Any]


def _text(value: str) -> str | None:
    return value.strip().strip("\x00").strip() or None


# (tag, field, parser, strict): strict tags that cannot be read are problems; lenient ones are skipped
# ("date" is often only a year).
_TAGS: tuple[tuple[str, str, Parser, bool], ...] = (
    ("com.apple.quicktime.creationdate", "captured_at", parse_timestamp, True),
    ("creation_time", "captured_at", parse_timestamp, True),
    ("date", "captured_at", parse_timestamp, False),
    ("com.apple.quicktime.location.iso6709", "location", parse_iso6709, True),
    ("location", "location", parse_iso6709, True),
    ("location-eng", "location", parse_iso6709, True),
    ("com.apple.quicktime.location.name", "captured_place", _text, False),
    ("com.apple.quicktime.make", "make", _text, False),
    ("make", "make", _text, False),
    ("com.android.manufacturer", "make", _text, False),
    ("com.apple.quicktime.model", "model", _text, False),
    ("model", "model", _text, False),
    ("com.android.model", "model", _text, False),
    ("serial_number", "device_serial", _text, False),
    ("serialnumber", "device_serial", _text, False),
    ("camera_serial_number", "device_serial", _text, False),
)
# ffmpeg's generic names for the bext fields (libavformat/wavdec.c, wav_metadata_conv).
_BEXT_NAMES = {
    "comment": "description",
    "encoded_by": "originator",
    "date": "origination_date",
    "creation_time": "origination_time",
}
# EBU R 99 unique source identifier: country (2), organisation (3), recorder serial (12),
# origination time hhmmss (6), random number (9).
_R99 = re.compile(r"[A-Z]{2}[0-9A-Z]{3}(?P<serial>[0-9A-Za-z]{12})[0-9]{6}[0-9]{9}")


class _ProbeFailed(ToolError):
    """ffprobe ran and could not read the file; ``run`` holds what it said."""

    def __init__(self, run: ToolRun) -> None:
        super().__init__("ffprobe", f"stopped with status {run.returncode}")
        self.run = run


@dataclass(frozen=True)
class FfprobeExtractor:
    """Container, streams, tags and damage, read by libavformat: in-process through PyAV
    (``engine="pyav"``, the default) or by running ffprobe and ffmpeg (``engine="ffprobe"``).

    Both engines give the same facts under the same ``ffprobe:`` sources, the same media
    information and the same verdict on damage; they differ in the tool named and in the wording of
    the messages, which name the program that read the file.
    """

    name: str = "ffprobe"
    ffprobe: str = "ffprobe"
    ffmpeg: str = "ffmpeg"
    check_integrity: bool = True
    engine: str = "pyav"  # one of ENGINES
    reader: AvReader | None = None  # the PyAV child to use; the process's shared one when None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown probe engine {self.engine!r}; known: {', '.join(ENGINES)}")

    def accepts(self, media_kind: str, original_name: str) -> bool:
        if media_kind == "image":
            return suffix_of(original_name) in STILLS
        return True  # video, audio, and "other": ffprobe may still recognise it

    def extract(self, path: Path, context: ExtractionContext) -> Extraction:
        if self.engine == "pyav":
            return self._extract_in_process(path, context)
        tool = tool_version(self.ffprobe) or f"{self.ffprobe} (version unknown)"
        shown = context.shown_name

        def failed(code: str, message: str) -> Extraction:
            return Extraction(self.name, tool, problems=(Problem(code, message),))

        try:
            probe = self._probe(path, context.timeout)
        except ToolMissingError:
            return failed(TOOL_MISSING, f"{shown}: ffprobe is not installed, so the file was not read")
        except ToolTimeoutError as exc:
            return failed(TIMEOUT, f"{shown}: ffprobe did not finish within {exc.timeout:g} s; nothing was read")
        except _ProbeFailed as exc:
            return failed(*_failure(exc.run, path, context))
        except ToolError as exc:
            return failed(TOOL_MISSING, f"{shown}: {exc}")

        def check(media: MediaInfo) -> list[Problem]:
            still = context.media_kind == "image"
            return check_media(path, media, still=still, shown=shown, timeout=context.timeout, ffmpeg=self.ffmpeg)

        return self._result(probe, context, tool, "ffprobe", check)

    def _extract_in_process(self, path: Path, context: ExtractionContext) -> Extraction:
        reader = self.reader or shared_reader()
        shown = context.shown_name
        still = context.media_kind == "image"

        def failed(code: str, message: str) -> Extraction:
            return Extraction(self.name, reader.version or AV_PROGRAM, problems=(Problem(code, message),))

        try:
            read = reader.read(path, still=still, check=self.check_integrity, timeout=context.timeout)
        except ToolMissingError:
            message = f"{shown}: PyAV (the Python package av) is not installed, so the file was not read"
            return failed(TOOL_MISSING, message)
        except ToolTimeoutError as exc:
            return failed(
                TIMEOUT,
                f"{shown}: reading it did not finish within {exc.timeout:g} s (the demuxer hung on it, so the "
                "reader was stopped); nothing was read",
            )
        except ReaderCrashedError as exc:
            return failed(DAMAGED_MEDIA, f"{shown}: reading it crashed the reader ({exc.reason}); nothing was read")
        except ToolError as exc:
            return failed(TOOL_MISSING, f"{shown}: {exc}")
        tool = reader.version or AV_PROGRAM
        if read.probe is None:
            lines = _distinct(read.failure)
            run = ToolRun(1, b"", "\n".join(lines).encode("utf-8", "surrogateescape"))
            return failed(*_failure(run, path, context, program=_LIBAV))

        def check(media: MediaInfo) -> list[Problem]:
            if read.check_timeout is not None:
                within = f"{read.check_timeout:g} s"
                message = f"{shown}: the check for damage did not finish within {within}; not known whole"
                return [Problem(TIMEOUT, message)]
            lines = [readable_line(line, path, shown) for line in _distinct(read.check or ())]
            problems = packet_problems(lines, 0, still=still, shown=shown, program=_LIBAV)
            return problems + length_problems(path, media, shown)

        return self._result(_readable_strings(read.probe), context, tool, _LIBAV, check)

    def _result(
        self,
        probe: dict[str, Any],
        context: ExtractionContext,
        tool: str,
        program: str,
        check: Callable[[MediaInfo], list[Problem]],
    ) -> Extraction:
        shown = context.shown_name
        media = media_info(probe, still=context.media_kind == "image")
        facts, problems = facts_of(probe, shown)
        has_media = any(stream.kind in ("video", "audio") for stream in media.streams)
        if not has_media:
            code = UNSUPPORTED_TYPE if context.media_kind == "other" else DAMAGED_MEDIA
            problems.append(Problem(code, f"{shown}: {program} finds no video or audio in it"))
        elif self.check_integrity:
            problems.extend(check(media))
        return Extraction(self.name, tool, unique(facts), media, tuple(problems))

    def _probe(self, path: Path, timeout: float) -> dict[str, Any]:
        args = [self.ffprobe, "-v", "error", "-hide_banner", "-show_format", "-show_streams"]
        args += ["-of", "json=string_validation=ignore", f"file:{path}"]
        run = run_tool(args, timeout)
        if run.returncode != 0:
            raise _ProbeFailed(run)
        try:
            data = json.loads(run.stdout.decode("utf-8", "surrogateescape"))
        except ValueError as exc:
            raise _ProbeFailed(ToolRun(1, b"", f"unreadable ffprobe output: {exc}".encode())) from exc
        if not isinstance(data, dict):
            raise _ProbeFailed(ToolRun(1, b"", b"unreadable ffprobe output"))
        return _readable_strings(data)


def media_info(probe: dict[str, Any], *, still: bool = False) -> MediaInfo:
    """Container and streams; for a still, without the frame rate and duration ffmpeg makes up for it."""
    fmt = probe.get("format") or {}
    streams = tuple(_stream(stream) for stream in probe.get("streams") or [] if isinstance(stream, dict))
    if still:
        streams = tuple(replace(stream, frame_rate=None, duration=None, frames=None) for stream in streams)
        return MediaInfo(fmt.get("format_name"), None, streams)
    return MediaInfo(fmt.get("format_name"), _number(fmt.get("duration")), streams)


def facts_of(probe: dict[str, Any], shown: str) -> tuple[list[Fact], list[Problem]]:
    """Facts from the container's tags, then the streams' (container first: it speaks for the file)."""
    facts: list[Fact] = []
    problems: list[Problem] = []
    fmt = probe.get("format") or {}
    tags = _tags(fmt)
    if fmt.get("format_name") == "wav" and "time_reference" in {key.lower() for key in tags}:
        tags = _bext(tags, facts, problems, shown)
    _read_tags(tags, "ffprobe:format.tags", facts, problems, shown)
    for position, stream in enumerate(probe.get("streams") or []):
        if isinstance(stream, dict):
            index = stream.get("index", position)
            _read_tags(_tags(stream), f"ffprobe:streams[{index}].tags", facts, problems, shown)
    return facts, problems


def _read_tags(tags: dict[str, str], prefix: str, facts: list[Fact], problems: list[Problem], shown: str) -> None:
    by_name = {key.lower(): key for key in tags}
    for tag, field, parse, strict in _TAGS:
        key = by_name.get(tag)
        if key is None:
            continue
        raw = tags[key]
        try:
            value = parse(raw)
        except ValueError as exc:
            if strict:
                problems.append(Problem(UNREADABLE_METADATA, f"{shown}: the {key} tag cannot be read: {exc}"))
            continue
        if value is not None:
            facts.append(Fact(field, value, f"{prefix}.{key}"))


def _bext(tags: dict[str, str], facts: list[Fact], problems: list[Problem], shown: str) -> dict[str, str]:
    """Read the bext fields; return the remaining tags for the generic reading."""
    bext: dict[str, str] = {}
    rest: dict[str, str] = {}
    for key, value in tags.items():
        lowered = key.lower()
        if lowered in _BEXT_NAMES:
            bext[_BEXT_NAMES[lowered]] = value
        elif lowered in ("originator_reference", "time_reference", "coding_history"):
            bext[lowered] = value
        else:
            rest[key] = value
    date, time = bext.get("origination_date", ""), bext.get("origination_time", "")
    try:
        captured = combine(date, time)
    except ValueError as exc:
        problems.append(Problem(UNREADABLE_METADATA, f"{shown}: the BWF origination date and time: {exc}"))
        captured = None
    if captured is not None:
        facts.append(Fact("captured_at", captured, "bext:origination_date+origination_time"))
    originator = _text(bext.get("originator", ""))
    if originator:
        facts.append(Fact("make", originator, "bext:originator"))
    match = _R99.fullmatch(bext.get("originator_reference", "").strip())
    if match:
        facts.append(Fact("device_serial", match["serial"], "bext:originator_reference"))
    return rest


def _failure(run: ToolRun, path: Path, context: ExtractionContext, program: str = "ffprobe") -> tuple[str, str]:
    shown = context.shown_name
    lines = [readable_line(line, path, shown) for line in run.error_lines()]
    said = "; ".join(lines) or f"{program} stopped with status {run.returncode}"
    if context.media_kind == "other":
        return UNSUPPORTED_TYPE, f"{shown}: not a media file {program} can read ({program}: {said})"
    message = f"{shown}: {program} cannot read it as {context.media_kind} ({program}: {said})"
    if any("moov atom not found" in line for line in lines):
        message += (
            "; the MP4/MOV index (moov atom) is missing, which usually means the recording was cut short: "
            "the camera lost power while recording or a copy was interrupted"
        )
    return DAMAGED_MEDIA, message


def _distinct(lines: Sequence[str], limit: int = 5) -> list[str]:
    """The first distinct non-empty lines, as :meth:`ToolRun.error_lines` keeps ffmpeg's."""
    kept: list[str] = []
    for line in lines:
        line = line.strip()
        if line and line not in kept:
            kept.append(line)
        if len(kept) == limit:
            break
    return kept


def _stream(stream: dict[str, Any]) -> StreamInfo:
    kind = stream.get("codec_type") or "data"
    frame_rate = None
    if kind == "video":
        average, base = _rate(stream.get("avg_frame_rate")), _rate(stream.get("r_frame_rate"))
        # Where the container's two rates disagree, the codec's own (which only the in-process engine
        # gives) is trusted: libavformat 7 and later time DV in 1/60000 s, which skews the average.
        codec = _rate(stream.get("framerate"))
        frame_rate = average if average == base else (codec if codec and base else None) or average or base
    language = (stream.get("tags") or {}).get("language")
    return StreamInfo(
        index=int(stream.get("index", 0)),
        kind=str(kind),
        codec=stream.get("codec_name"),
        width=_integer(stream.get("width")),
        height=_integer(stream.get("height")),
        frame_rate=frame_rate,
        sample_rate=_integer(stream.get("sample_rate")),
        channels=_integer(stream.get("channels")),
        duration=_number(stream.get("duration")),
        language=language if language and language != "und" else None,
        frames=_integer(stream.get("nb_frames")),
    )


def _tags(entry: dict[str, Any]) -> dict[str, str]:
    tags = entry.get("tags") or {}
    return {str(key): str(value) for key, value in tags.items()} if isinstance(tags, dict) else {}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number >= 0 else None  # NaN and negatives are not durations


def _integer(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number > 0 else None


def _rate(value: Any) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    numerator, _, denominator = value.partition("/")
    top, bottom = _number(numerator), _number(denominator)
    if not top or not bottom:
        return None
    return round(top / bottom, 3)


def _readable_strings(value: Any) -> Any:
    """Strings ffprobe passed through as bytes, shown as UTF-8 or else GB18030."""
    if isinstance(value, str):
        return readable(value.encode("utf-8", "surrogateescape"))
    if isinstance(value, dict):
        return {_readable_strings(key): _readable_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_readable_strings(item) for item in value]
    return value
