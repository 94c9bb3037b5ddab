"""Capture times as cameras write them, turned into one ISO 8601 form.

Sources disagree on separators ("2025:09:30 14:30:15", "2025-09-30T06:30:15.000000Z",
"2025-09-30T14:30:15+0800"). The result keeps exactly what the source knew: the offset when it gave
one (zero offset written "Z"), no offset when it gave none. Guessing a zone is the caller's business.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_TIMESTAMP = re.compile(
    r"(?P<year>\d{4})[-:/._ ](?P<month>\d{1,2})[-:/._ ](?P<day>\d{1,2})"
    r"[T ]+(?P<hour>\d{1,2})[-:._ ](?P<minute>\d{2})(?:[-:._ ](?P<second>\d{2})(?P<fraction>[.,]\d{1,9})?)?"
    r"\s*(?P<zone>Z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)
# Values cameras write when their clock was never set or the field is a placeholder.
_UNSET = re.compile(r"[0\s:.\-/T]*")


def parse_timestamp(text: str) -> str | None:
    """ISO 8601 for ``text``: ``None`` when it is empty or a placeholder (all zeros).

    Raises :class:`ValueError` for text that is neither a timestamp nor a placeholder.
    """
    text = text.strip().rstrip("\x00").strip()
    if _UNSET.fullmatch(text):
        return None
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a date and time: {text!r}")
    parts = match.groupdict()
    microsecond = 0
    if parts["fraction"]:
        microsecond = int(parts["fraction"][1:7].ljust(6, "0"))
    zone = _zone(parts["zone"])
    moment = datetime(
        int(parts["year"]),
        int(parts["month"]),
        int(parts["day"]),
        int(parts["hour"]),
        int(parts["minute"]),
        int(parts["second"] or 0),
        microsecond,
        tzinfo=zone,
    )
    return format_timestamp(moment)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601, seconds unless the source had a fraction, and "Z" for a zero offset."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def combine(date: str, time: str, offset: str | None = None) -> str | None:
    """One timestamp from a date, a time and an optional offset kept apart by the source (EXIF, BWF)."""
    date, time = date.strip().rstrip("\x00"), time.strip().rstrip("\x00")
    if not date or not time or _UNSET.fullmatch(date):
        return None
    zone = (offset or "").strip().rstrip("\x00")
    if _UNSET.fullmatch(zone):  # absent, blank, or "-00:00" (RFC 3339: offset unknown)
        zone = ""
    return parse_timestamp(f"{date} {time}{zone}")


def _zone(text: str | None) -> timezone | None:
    if text is None or text in ("-00:00", "-0000", "-00"):  # RFC 3339: the offset is unknown
        return None
    if text in ("Z", "UTC"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a time-zone offset: {text!r}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
