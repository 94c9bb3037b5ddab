"""Positions as cameras write them, turned into signed decimal degrees (WGS 84).

QuickTime/MP4 files carry ISO 6709 strings ("+31.2304+121.4737+010.000/"); EXIF carries degrees,
minutes and seconds with N/S/E/W references. Both become {"lat", "lon", "alt"}. A position of
exactly 0°, 0° is what many cameras write before they have a satellite fix, so it is no position.

Devices round: 43.8° becomes 43° 47' 60" (exiftool writes that too), 59.99996" is written 60.00",
minutes come with a fraction and zero seconds (the form the EXIF standard gives for
degrees and minutes), degrees with a fraction and zero minutes and seconds. All of these are read
as the sum they stand for, 60 carried into the next unit. Minutes or seconds that are negative,
above 60 by more than :data:`ROUNDING`, or not numbers are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TypedDict

_DECIMALS = 7  # about 1 cm; more digits are noise from the rational arithmetic
# How far past 60 minutes or seconds may read and still be taken for 60: a hundredth, the finest
# step devices write them in, so only a value rounded up (never one simply wrong) passes.
ROUNDING = 0.01


class Location(TypedDict):
    lat: float
    lon: float
    alt: float | None


_ISO6709 = re.compile(
    r"(?P<lat>[+-]\d+(?:\.\d*)?)(?P<lon>[+-]\d+(?:\.\d*)?)(?P<alt>[+-]\d+(?:\.\d*)?)?(?:CRS[^/]*)?/?", re.ASCII
)


def location(lat: float, lon: float, alt: float | None = None) -> Location | None:
    """A checked location; ``None`` for the no-fix position 0°, 0°.

    Raises :class:`ValueError` when latitude or longitude is out of range, or the altitude is not a number.
    """
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position out of range: latitude {lat}, longitude {lon}")
    if alt is not None and not math.isfinite(alt):
        raise ValueError(f"altitude is not a number: {alt}")
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

    ``negative`` is the reference letter for the southern or western hemisphere. Raises
    :class:`ValueError` for parts that are not numbers, negative minutes or seconds, and minutes or
    seconds past 60 by more than rounding.
    """
    if not parts or len(parts) > 3:
        raise ValueError(f"expected degrees, minutes and seconds, got {list(parts)}")
    degrees, minutes, seconds = [*parts, 0.0, 0.0][:3]
    if not all(math.isfinite(part) for part in (degrees, minutes, seconds)):
        raise ValueError(f"degrees, minutes and seconds must be numbers: {list(parts)}")
    if not (_sixty(minutes) and _sixty(seconds)):
        raise ValueError(f"minutes and seconds out of range: {list(parts)}")
    value = _degrees(abs(degrees), minutes, seconds)
    return -value if reference.strip().upper().startswith(negative) or degrees < 0 else value


def _sixty(value: float) -> bool:
    """Whether minutes or seconds are in range: 0 up to 60, or a rounded 60."""
    return 0 <= value <= 60 + ROUNDING


def _degrees(degrees: float, minutes: float, seconds: float) -> float:
    # Rounded so that a carried 60 gives the whole degree it stands for (89° 59' 60" is 90°, not a
    # hair above it, which would be out of range).
    return round(degrees + minutes / 60 + seconds / 3600, 10)


def _sexagesimal(text: str, degree_digits: int) -> float:
    sign = -1.0 if text[0] == "-" else 1.0
    whole, _, fraction = text[1:].partition(".")
    extra = len(whole) - degree_digits  # 0: degrees, 2: + minutes, 4: + minutes and seconds
    if extra not in (0, 2, 4):
        raise ValueError(f"not an ISO 6709 coordinate: {text!r}")
    if extra == 0:
        return sign * float(f"{whole}.{fraction or 0}")
    degrees = float(whole[:degree_digits])
    minutes = float(whole[degree_digits : degree_digits + 2])
    seconds = 0.0
    if extra == 2:
        minutes = float(f"{whole[degree_digits:]}.{fraction or 0}")
    else:
        seconds = float(f"{whole[degree_digits + 2 :]}.{fraction or 0}")
    if not (_sixty(minutes) and _sixty(seconds)):
        raise ValueError(f"minutes or seconds out of range in {text!r}")
    return sign * _degrees(degrees, minutes, seconds)
