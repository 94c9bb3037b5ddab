"""Positions as cameras write them, turned into signed decimal degrees (WGS 84).

QuickTime/MP4 files carry ISO 6709 strings ("+31.2304+121.4737+010.000/"); EXIF carries degrees,
minutes and seconds with N/S/E/W references. Both become {"lat", "lon", "alt"}. A position of
exactly 0°, 0° is what many cameras write before they have a satellite fix, so it is no position.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypedDict

_DECIMALS = 7  # about 1 cm; more digits are noise from the rational arithmetic


class Location(TypedDict):
    lat: float
    lon: float
    alt: float | None


_ISO6709 = re.compile(r"(?P<lat>[+-]\d+(?:\.\d*)?)(?P<lon>[+-]\d+(?:\.\d*)?)(?P<alt>[+-]\d+(?:\.\d*)?)?(?:CRS[^/]*)?/?")


def location(lat: float, lon: float, alt: float | None = None) -> Location | None:
    """A checked location; ``None`` for the no-fix position 0°, 0°.

    Raises :class:`ValueError` when latitude or longitude is out of range.
    """
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position out of range: latitude {lat}, longitude {lon}")
    if lat == 0 and lon == 0:
        return None
    return {
        "lat": round(lat, _DECIMALS),
        "lon": round(lon, _DECIMALS),
        "alt": round(alt, 3) if alt is not None else None,
    }


def parse_iso6709(text: str) -> Location | None:
    """An ISO 6709 point in any of its forms (±DD.D, ±DDMM.M, ±DDMMSS.S for latitude, one more digit
    of degrees for longitude), with optional altitude. Raises :class:`ValueError` for other text."""
    match = _ISO6709.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO 6709 position: {text!r}")
    lat = _sexagesimal(match["lat"], degree_digits=2)
    lon = _sexagesimal(match["lon"], degree_digits=3)
    alt = float(match["alt"]) if match["alt"] else None
    return location(lat, lon, alt)


def from_dms(parts: Sequence[float], reference: str, negative: str) -> float:
    """Degrees (and minutes, seconds when given) with a hemisphere reference, as signed degrees.

    ``negative`` is the reference letter for the southern or western hemisphere.
    """
    if not parts or len(parts) > 3:
        raise ValueError(f"expected degrees, minutes and seconds, got {list(parts)}")
    degrees, minutes, seconds = [*parts, 0.0, 0.0][:3]
    if minutes < 0 or seconds < 0 or minutes >= 60 or seconds >= 60:
        raise ValueError(f"minutes and seconds out of range: {list(parts)}")
    value = abs(degrees) + minutes / 60 + seconds / 3600
    return -value if reference.strip().upper().startswith(negative) or degrees < 0 else value


def _sexagesimal(text: str, degree_digits: int) -> float:
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    extra = len(whole) - degree_digits  # 0: degrees, 2: + minutes, 4: + minutes and seconds
    if extra not in (0, 2, 4):
        raise ValueError(f"not an ISO 6709 coordinate: {text!r}")
    degrees = float(whole[:degree_digits])
    if extra == 0:
        return sign * float(f"{whole}.{fraction or 0}")
    minutes = float(whole[degree_digits : degree_digits + 2])
    seconds = 0.0
    if extra == 2:
        minutes = float(f"{whole[degree_digits:]}.{fraction or 0}")
    else:
        seconds = float(f"{whole[degree_digits + 2 :]}.{fraction or 0}")
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"minutes or seconds out of range in {text!r}")
    return sign * (degrees + minutes / 60 + seconds / 3600)
