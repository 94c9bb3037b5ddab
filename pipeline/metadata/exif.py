"""exifread: when, where and with which camera a photo was taken, from its EXIF block.

Read: DateTimeOriginal with SubSecTimeOriginal and OffsetTimeOriginal (DateTimeDigitized when there
is no original time), the GPS date and time (UTC by definition), GPS latitude, longitude and altitude
with their references as signed degrees and metres, Make, Model, BodySerialNumber and the DNG
CameraSerialNumber.

exifread does not raise on most damage: it logs a warning and carries on, or returns nothing at all.
So its warnings for this file are collected and become a problem, and a JPEG whose EXIF segment is
there but yields nothing is reported, rather than looking like a photo without metadata. exifread
runs in this process without a deadline; it reads only the header blocks and guards against loops.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import exifread
from exifread.core.exceptions import ExifNotFound

from pipeline.metadata.facts import Extraction, ExtractionContext, Fact, Problem, unique
from pipeline.metadata.geo import ROUNDING, from_dms, location
from pipeline.metadata.timestamps import combine
from pipeline.stage.issues import DAMAGED_MEDIA, UNREADABLE_METADATA
from pipeline.stage.names import readable

TOOL = f"exifread {exifread.__version__}"
_JPEG_SCAN_LIMIT = 256  # segments looked at before the image data, far more than any camera writes


@dataclass(frozen=True)
class ExifreadExtractor:
    name: str = "exifread"

    def accepts(self, media_kind: str, original_name: str) -> bool:
        return media_kind == "image"

    def extract(self, path: Path, context: ExtractionContext) -> Extraction:
        shown = context.shown_name
        problems: list[Problem] = []
        try:
            with path.open("rb") as handle, _warnings() as warnings:
                tags = exifread.process_file(handle, details=False, extract_thumbnail=False)
        except OSError as exc:
            problem = Problem(DAMAGED_MEDIA, f"{shown}: cannot be read: {exc.strerror or exc}")
            return Extraction(self.name, TOOL, problems=(problem,))
        except Exception as exc:  # exifread's parsers raise many types (struct.error, IndexError, …) on damage
            problem = Problem(
                UNREADABLE_METADATA, f"{shown}: the EXIF block is damaged and cannot be read (exifread: {exc})"
            )
            return Extraction(self.name, TOOL, problems=(problem,))
        facts = _facts(tags, shown, problems)
        if warnings:
            said = "; ".join(dict.fromkeys(warnings))
            problems.append(
                Problem(UNREADABLE_METADATA, f"{shown}: the EXIF block is partly damaged (exifread: {said})")
            )
        if not tags and _jpeg_has_exif(path):
            problems.append(
                Problem(
                    UNREADABLE_METADATA, f"{shown}: has an EXIF block, but nothing in it can be read; it is damaged"
                )
            )
        return Extraction(self.name, TOOL, unique(facts), None, tuple(problems))


def _facts(tags: dict[str, Any], shown: str, problems: list[Problem]) -> list[Fact]:
    facts: list[Fact] = []

    def problem(tag: str, exc: Exception) -> None:
        problems.append(Problem(UNREADABLE_METADATA, f"{shown}: EXIF {tag} cannot be read: {exc}"))

    for stamp, offset, subsec in (
        ("EXIF DateTimeOriginal", "EXIF OffsetTimeOriginal", "EXIF SubSecTimeOriginal"),
        ("EXIF DateTimeDigitized", "EXIF OffsetTimeDigitized", "EXIF SubSecTimeDigitized"),
    ):
        text = _text(tags.get(stamp))
        if not text:
            continue
        date, _, time = text.partition(" ")
        fraction = _text(tags.get(subsec))
        if fraction and fraction.isdigit():
            time = f"{time}.{fraction}"
        zone = _text(tags.get(offset))
        try:
            value = combine(date, time, zone)
        except ValueError as exc:
            problem(stamp.split(" ", 1)[1], exc)
            continue
        if value is not None:
            parts = [stamp] + ([offset.split(" ", 1)[1]] if zone else [])
            facts.append(Fact("captured_at", value, "exif:" + "+".join(parts)))
            break

    gps_date, gps_time = _text(tags.get("GPS GPSDate")), tags.get("GPS GPSTimeStamp")
    if gps_date and gps_time is not None:
        try:
            value = combine(gps_date, _clock(_numbers(gps_time)), "Z")
        except (ValueError, OverflowError) as exc:
            problem("GPS date and time", exc)
        else:
            if value is not None:
                facts.append(Fact("captured_at", value, "exif:GPS GPSDate+GPSTimeStamp"))

    if "GPS GPSLatitude" in tags and "GPS GPSLongitude" in tags:
        try:
            lat = from_dms(_numbers(tags["GPS GPSLatitude"]), _text(tags.get("GPS GPSLatitudeRef")) or "N", "S")
            lon = from_dms(_numbers(tags["GPS GPSLongitude"]), _text(tags.get("GPS GPSLongitudeRef")) or "E", "W")
            alt = None
            if "GPS GPSAltitude" in tags:
                altitude = _numbers(tags["GPS GPSAltitude"])
                if not altitude:
                    raise ValueError("the altitude has no value")
                below = _numbers(tags["GPS GPSAltitudeRef"]) if "GPS GPSAltitudeRef" in tags else []
                alt = -altitude[0] if below[:1] == [1.0] else altitude[0]
            place = location(lat, lon, alt)
        except ValueError as exc:
            problem("GPS position", exc)
        else:
            if place is not None:
                facts.append(Fact("location", dict(place), "exif:GPS GPSLatitude+GPSLongitude"))

    for tag, field in (
        ("Image Make", "make"),
        ("Image Model", "model"),
        ("EXIF BodySerialNumber", "device_serial"),
        ("Image CameraSerialNumber", "device_serial"),
    ):
        text = _text(tags.get(tag))
        if text:
            facts.append(Fact(field, text, f"exif:{tag}"))
    return facts


def _text(tag: Any) -> str | None:
    if tag is None:
        return None
    values = getattr(tag, "values", tag)
    if isinstance(values, bytes):
        values = readable(values.split(b"\x00", 1)[0])
    elif not isinstance(values, str):
        values = str(getattr(tag, "printable", values))
    return values.strip().strip("\x00").strip() or None


def _numbers(tag: Any) -> list[float]:
    values = getattr(tag, "values", tag)
    if not isinstance(values, list | tuple):
        values = [values]
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except ZeroDivisionError as exc:
            raise ValueError(f"a fraction with denominator 0 ({value!r})") from exc
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"not a number: {value!r}") from exc
    return numbers


def _clock(parts: list[float]) -> str:
    """``HH:MM:SS.ffffff`` from the GPS time's hours, minutes and seconds, a rounded 60 carried
    (12:29:60 is 12:30:00). Raises :class:`ValueError` for parts that are not a time of day."""
    hours, minutes, seconds = [*parts, 0.0, 0.0, 0.0][:3]
    if not all(math.isfinite(part) and part >= 0 for part in (hours, minutes, seconds)):
        raise ValueError(f"not a time of day: {parts}")
    micros = round((hours * 3600 + minutes * 60 + seconds) * 1_000_000)
    if hours >= 24 or minutes > 60 + ROUNDING or seconds > 60 + ROUNDING or micros >= 86_400_000_000:
        raise ValueError(f"not a time of day: {parts}")
    hours_part, rest = divmod(micros, 3_600_000_000)
    minutes_part, rest = divmod(rest, 60_000_000)
    seconds_part, fraction = divmod(rest, 1_000_000)
    return f"{hours_part:02d}:{minutes_part:02d}:{seconds_part:02d}.{fraction:06d}"


def _jpeg_has_exif(path: Path) -> bool:
    """Whether a JPEG carries an APP1 "Exif" segment before its image data."""
    try:
        with path.open("rb") as handle:
            if handle.read(2) != b"\xff\xd8":
                return False
            for _ in range(_JPEG_SCAN_LIMIT):
                marker = handle.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return False
                if marker[1] in (0x01, 0xFF) or 0xD0 <= marker[1] <= 0xD7:
                    continue
                if marker[1] in (0xD9, 0xDA):  # end of image, start of scan
                    return False
                size = handle.read(2)
                if len(size) < 2:
                    return False
                (length,) = struct.unpack(">H", size)
                start = handle.tell()
                if marker[1] == 0xE1 and handle.read(6) == b"Exif\x00\x00":
                    return True
                handle.seek(start + length - 2)
    except OSError:
        return False
    return False


@contextmanager
def _warnings() -> Iterator[list[str]]:
    """exifread's warnings about this thread's file while the block runs."""
    collected: list[str] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread and not isinstance(record.msg, ExifNotFound):
                collected.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("exifread")
    logger.addHandler(handler)
    try:
        yield collected
    finally:
        logger.removeHandler(handler)
