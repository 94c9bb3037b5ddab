"""exiftool: what ffprobe and exifread do not read. XMP (dates, positions, places, serials in any
file), HEIC, and the dates and positions of MTS/M2TS (AVCHD, from the H.264 stream), DV, AVI, MXF
and ASF recordings.

Asked, through one long-running ``exiftool -stay_open True -@ -`` per process
(:class:`ExiftoolProcess`), for ``-j -n -G1 -api largefilesupport=1 FILE``: JSON, numbers
unformatted (signed decimal degrees), each tag with the group it came from, which becomes the fact's source
(``exiftool:XMP-xmp:CreateDate``). Groups the other extractors already read for that file type are
left out (``skip_groups``): QuickTime/MP4 headers and keys are ffprobe's, JPEG/TIFF EXIF is
exifread's, WAV RIFF chunks are ffprobe's. exiftool prints QuickTime header times without their
UTC marker, and taking them from here would shift them by the site's zone.

exiftool is a Perl program from Debian's ``libimage-exiftool-perl``; when it is not installed the
result is a ``tool-missing`` problem, not a failure.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import selectors
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.metadata.children import end_child, start_child
from pipeline.metadata.facts import Extraction, ExtractionContext, Fact, Problem, unique
from pipeline.metadata.geo import location
from pipeline.metadata.timestamps import parse_timestamp
from pipeline.stage.issues import TIMEOUT, TOOL_MISSING, TRUNCATED_STREAM, UNREADABLE_METADATA
from pipeline.stage.tools import ToolError, ToolMissingError, ToolRun, ToolTimeoutError, run_tool, tool_version

# Never facts: the file system, exiftool itself, and values exiftool derives from other tags.
ALWAYS_SKIPPED = frozenset(["System", "File", "ExifTool", "Composite"])
_QUICKTIME = frozenset(["QuickTime", "Keys", "ItemList", "UserData", "Track*"])
_EXIF = frozenset(["IFD0", "IFD1", "ExifIFD", "GPS", "InteropIFD"])
# Groups read by another extractor, by exiftool's File:FileType.
READ_ELSEWHERE: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(["MP4", "MOV", "M4V", "3GP", "3G2", "M4A"], _QUICKTIME),
    **dict.fromkeys(["JPEG", "TIFF"], _EXIF),
    "WAV": frozenset(["RIFF"]),
    **dict.fromkeys(["MKV", "WEBM"], frozenset(["Matroska"])),
}

_TIME_TAGS = (
    "DateTimeOriginal",
    "CreateDate",
    "DateCreated",
    "CreationDate",
    "LocalCreationDateTime",
    "ClipCreationDateTime",
)
_OFFSET_TAGS = {"DateTimeOriginal": "OffsetTimeOriginal", "CreateDate": "OffsetTimeDigitized"}
_TEXT_TAGS = (
    ("Make", "make"),
    ("Model", "model"),
    ("SerialNumber", "device_serial"),
    ("BodySerialNumber", "device_serial"),
    ("CameraSerialNumber", "device_serial"),
    ("InternalSerialNumber", "device_serial"),
)
# A place name in parts, from the most to the least precise; the first tag found fills each part.
_PLACE_PARTS = (
    ("Location", "Sub-location"),
    ("City",),
    ("State", "Province-State"),
    ("Country", "Country-PrimaryLocationName"),
)
_CUT_SHORT = re.compile(r"truncat", re.IGNORECASE)
_UNKNOWN_TYPE = "Unknown file type"


@dataclass(frozen=True)
class ExiftoolExtractor:
    name: str = "exiftool"
    exiftool: str = "exiftool"
    skip_groups: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(READ_ELSEWHERE))
    stay_open: bool = True  # one long-running exiftool (False: one exiftool per file, as it used to be)
    process: ExiftoolProcess | None = None  # the long-running exiftool; the process's shared one when None

    def accepts(self, media_kind: str, original_name: str) -> bool:
        return media_kind in ("image", "video")

    def extract(self, path: Path, context: ExtractionContext) -> Extraction:
        shown = context.shown_name
        tool = tool_version(self.exiftool, "-ver") or f"{self.exiftool} (not installed)"

        def failed(code: str, message: str) -> Extraction:
            return Extraction(self.name, tool, problems=(Problem(code, message),))

        args = ["-j", "-n", "-G1", "-api", "largefilesupport=1", str(path.absolute())]
        try:
            if self.stay_open:
                run = (self.process or exiftool_process(self.exiftool)).run(args, context.timeout)
            else:
                run = run_tool([self.exiftool, *args], context.timeout)
        except ToolMissingError:
            return failed(
                TOOL_MISSING,
                f"{shown}: exiftool is not installed (Debian package libimage-exiftool-perl), so XMP and "
                "other metadata it reads were not looked at",
            )
        except ToolTimeoutError as exc:
            return failed(TIMEOUT, f"{shown}: exiftool did not finish within {exc.timeout:g} s; nothing was read")
        except ToolError as exc:
            return failed(TOOL_MISSING, f"{shown}: {exc}")
        try:
            records = json.loads(run.stdout.decode("utf-8", "replace"))
            tags = records[0]
            if not isinstance(tags, dict):
                raise ValueError("not an object")
        except (ValueError, IndexError, KeyError, TypeError):
            said = "; ".join(run.error_lines()) or f"exiftool stopped with status {run.returncode}"
            return failed(UNREADABLE_METADATA, f"{shown}: exiftool cannot read it ({said})")

        problems: list[Problem] = []
        error = tags.get("ExifTool:Error")
        # "Unknown file type" says what exiftool reads, not what is wrong with the file (a bare H.264
        # stream is whole and exiftool still has no reader for it); ffprobe speaks for such files.
        if error and not str(error).startswith(_UNKNOWN_TYPE):
            problems.append(Problem(UNREADABLE_METADATA, f"{shown}: exiftool cannot read it ({error})"))
        warning = tags.get("ExifTool:Warning")
        if isinstance(warning, str) and not warning.startswith("[minor]"):
            code = TRUNCATED_STREAM if _CUT_SHORT.search(warning) else UNREADABLE_METADATA
            problems.append(Problem(code, f"{shown}: exiftool warns: {warning}"))
        skipped = ALWAYS_SKIPPED | self.skip_groups.get(str(tags.get("File:FileType", "")), frozenset())
        groups = _by_group(tags, skipped)
        return Extraction(self.name, tool, unique(_facts(groups)), None, tuple(problems))


def _by_group(tags: dict[str, Any], skipped: frozenset[str]) -> dict[str, dict[str, Any]]:
    """``{"XMP-xmp": {"CreateDate": …}, …}`` without the skipped groups ("Track*" covers Track1, …)."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in tags.items():
        group, _, tag = key.rpartition(":")
        if not group or group in skipped or re.sub(r"\d+$", "*", group) in skipped:
            continue
        groups.setdefault(group, {})[tag] = value
    return groups


def _facts(groups: dict[str, dict[str, Any]]) -> list[Fact]:
    facts: list[Fact] = []
    for group, tags in groups.items():
        for tag in _TIME_TAGS:
            if tag not in tags:
                continue
            offset_tag = _OFFSET_TAGS.get(tag, "")
            offset = str(tags.get(offset_tag) or "").strip()
            text = str(tags[tag]).strip()
            has_zone = re.search(r"(Z|[+-]\d{2}:?\d{2})$", text) is not None
            try:
                value = parse_timestamp(text + offset if offset and not has_zone else text)
            except ValueError:
                continue  # a date without a time (XMP allows it) or a value exiftool could not decode
            if value is not None:
                used = [tag, offset_tag] if offset and not has_zone else [tag]
                facts.append(Fact("captured_at", value, f"exiftool:{group}:" + "+".join(used)))
        place = _position(tags)
        if place is not None:
            facts.append(Fact("location", place[0], f"exiftool:{group}:{place[1]}"))
        for tag, name in _TEXT_TAGS:
            value = tags.get(tag)
            if value is not None and str(value).strip():
                facts.append(Fact(name, str(value).strip(), f"exiftool:{group}:{tag}"))
    place_name = _place_name(groups)
    if place_name is not None:
        facts.append(Fact("captured_place", place_name[0], "exiftool:" + "+".join(place_name[1])))
    return facts


def _position(tags: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """A position from one group's GPS tags (signed with -n in XMP, unsigned with a reference in EXIF)."""
    try:
        if "GPSLatitude" in tags and "GPSLongitude" in tags:
            lat, lon = float(tags["GPSLatitude"]), float(tags["GPSLongitude"])
            if str(tags.get("GPSLatitudeRef", "")).upper().startswith("S"):
                lat = -abs(lat)
            if str(tags.get("GPSLongitudeRef", "")).upper().startswith("W"):
                lon = -abs(lon)
            alt = float(tags["GPSAltitude"]) if "GPSAltitude" in tags else None
            if alt is not None and str(tags.get("GPSAltitudeRef", "0")) == "1":
                alt = -abs(alt)
            found, used = location(lat, lon, alt), "GPSLatitude+GPSLongitude"
        elif "GPSCoordinates" in tags:
            numbers = [float(part) for part in str(tags["GPSCoordinates"]).replace(",", " ").split()]
            found, used = location(numbers[0], numbers[1], numbers[2] if len(numbers) > 2 else None), "GPSCoordinates"
        else:
            return None
    except (ValueError, TypeError, IndexError):
        return None
    return (dict(found), used) if found is not None else None


def _place_name(groups: dict[str, dict[str, Any]]) -> tuple[str, list[str]] | None:
    parts: list[str] = []
    used: list[str] = []
    for names in _PLACE_PARTS:
        for group, tags in groups.items():
            hit = next((name for name in names if str(tags.get(name) or "").strip()), None)
            if hit is not None:
                text = str(tags[hit]).strip()
                if re.match(r"[+-]?\d", text):  # coordinates (an ISO 6709 "Location"), not a name
                    continue
                if text not in parts:
                    parts.append(text)
                    used.append(f"{group}:{hit}")
                break
    return (", ".join(parts), used) if parts else None


class ExiftoolProcess:
    """One ``exiftool -stay_open True -@ -`` serving every file of this process: Perl and exiftool's
    modules load once, not once per file.

    Each request is its arguments, one per line, then ``-echo4 {readyN}`` and ``-executeN``; the
    answer is standard output up to ``{readyN}`` and standard error up to the echoed marker.
    Thread-safe (one request at a time, under a lock); started on first use; restarted when it died
    (a request that finds it dead is sent once more to a new one); killed when a request outlives
    its time-out; told to stop at exit, and killed with this process however it ends (exiftool
    itself waits for ever on a closed input; see :mod:`pipeline.metadata.children`).
    """

    def __init__(self, program: str = "exiftool") -> None:
        self.program = program
        self.started = 0  # processes started so far
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = os.getpid()
        self._serial = 0
        _processes_alive.add(self)

    @property
    def pid(self) -> int | None:
        """The running process's id, if one is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def run(self, args: Sequence[str], timeout: float) -> ToolRun:
        """exiftool's output for ``args`` (its options and file names), within ``timeout`` seconds.

        Raises :class:`ToolMissingError` when exiftool is not installed and :class:`ToolTimeoutError`
        when it ran past ``timeout`` (the process is killed; the next request starts another).
        """
        if any("\n" in arg or "\r" in arg for arg in args):  # cannot be one line of the argument file
            return run_tool([self.program, *args], timeout)
        with self._lock:
            for attempt in (1, 2):
                process = self._running()
                self._serial += 1
                marker = f"{{ready{self._serial}}}"
                request = [*args, "-echo4", marker, f"-execute{self._serial}"]
                try:
                    assert process.stdin is not None
                    process.stdin.write(b"".join(os.fsencode(arg) + b"\n" for arg in request))
                    process.stdin.flush()
                    return self._answer(process, marker.encode(), timeout)
                except (OSError, _Died) as exc:
                    status = process.poll()
                    self._stop(gently=False)
                    if attempt == 2:  # died twice on this request: the file is the likelier cause
                        said = f"exiftool stopped with status {status} ({exc})".encode()
                        return ToolRun(status if status else 1, b"", said)
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Ask exiftool to stop (killed if it has not within two seconds)."""
        with self._lock:
            self._stop(gently=True)

    def _running(self) -> subprocess.Popen[bytes]:
        if self._owner != os.getpid():  # inherited through fork: it belongs to the parent
            self._process, self._owner = None, os.getpid()
            self._lock = threading.Lock()
        process = self._process
        if process is not None and process.poll() is None:
            return process
        self._stop(gently=False)
        program = shutil.which(self.program)
        if program is None:
            raise ToolMissingError(self.program, "is not installed")
        args = [program, "-stay_open", "True", "-@", "-"]
        try:
            process = start_child(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise ToolMissingError(self.program, "is not installed") from exc
        except OSError as exc:
            raise ToolError(self.program, f"cannot be started: {exc.strerror or exc}") from exc
        self._process = process
        self.started += 1
        return process

    def _answer(self, process: subprocess.Popen[bytes], marker: bytes, timeout: float) -> ToolRun:
        assert process.stdout is not None and process.stderr is not None
        deadline = time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        ends = {process.stdout.fileno(): (out, marker + b"\n"), process.stderr.fileno(): (err, marker + b"\n")}
        with selectors.DefaultSelector() as selector:
            for stream in (process.stdout, process.stderr):
                selector.register(stream, selectors.EVENT_READ)
            while not all(buffer.endswith(end) for buffer, end in ends.values()):
                left = deadline - time.monotonic()
                ready = selector.select(left) if left > 0 else []
                if not ready:
                    self._stop(gently=False)
                    raise ToolTimeoutError(self.program, timeout)
                for key, _ in ready:
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        raise _Died("its output ended")
                    ends[key.fd][0].extend(chunk)
        return ToolRun(0, bytes(out[: -len(marker) - 1]), bytes(err[: -len(marker) - 1]))

    def _stop(self, *, gently: bool) -> None:
        process, self._process = self._process, None
        if process is None or self._owner != os.getpid():
            return
        if gently and process.poll() is None and process.stdin is not None:
            try:
                process.stdin.write(b"-stay_open\nFalse\n")
                process.stdin.flush()
                process.wait(timeout=2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        end_child(process)


class _Died(Exception):
    """exiftool's output ended before its answer did."""


_processes_alive: weakref.WeakSet[ExiftoolProcess] = weakref.WeakSet()
_shared: dict[str, ExiftoolProcess] = {}
_shared_lock = threading.Lock()


def exiftool_process(program: str = "exiftool") -> ExiftoolProcess:
    """The long-running exiftool this process shares for ``program``."""
    with _shared_lock:
        process = _shared.get(program)
        if process is None:
            process = _shared[program] = ExiftoolProcess(program)
        return process


@atexit.register
def _close_all() -> None:
    for process in list(_processes_alive):
        process.close()
