"""The parsers of positions and times, checked on every input hypothesis can think of: whatever a
device writes is read back to what it meant within the precision it was written in, and text
that is not a position or a time is refused with ValueError, never another exception."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.metadata.geo import from_dms, location, parse_iso6709
from pipeline.metadata.timestamps import combine, format_timestamp, parse_timestamp

FAST = settings(max_examples=300, deadline=None)
latitudes = st.floats(-90, 90, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)
# Anything a tag or an EXIF field may hold, plus text that is nearly right.
junk = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"[+-]\d{1,9}(\.\d{0,6})?[+-]\d{1,9}(\.\d{0,6})?([+-]\d{1,5}(\.\d*)?)?/?", fullmatch=True),
    st.from_regex(
        r"\d{4}[-:]\d{1,2}[-:]\d{1,2}[T ]\d{1,2}:\d{2}(:\d{2}([.,]\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?", fullmatch=True
    ),
)


def dms(value: float, places: int) -> tuple[float, float, float]:
    """Degrees, minutes and seconds as a device writes them: whole degrees and minutes, seconds
    rounded to ``places`` decimals and not carried, so 59.996 becomes 60.00."""
    degrees = math.floor(value)
    minutes = math.floor((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60, places)
    return float(degrees), float(minutes), seconds


def sexagesimal(value: float, degree_digits: int, form: str, places: int) -> str:
    """One ISO 6709 coordinate in ``form`` ("D", "DM" or "DMS"), rounded like a device, not carried."""
    sign = "-" if value < 0 else "+"
    magnitude = abs(value)
    if form == "D":
        return sign + fixed(magnitude, degree_digits, places)
    degrees = math.floor(magnitude)
    minutes = (magnitude - degrees) * 60
    if form == "DM":
        return f"{sign}{degrees:0{degree_digits}d}{fixed(minutes, 2, places)}"
    seconds = (minutes - math.floor(minutes)) * 60
    return f"{sign}{degrees:0{degree_digits}d}{math.floor(minutes):02d}{fixed(seconds, 2, places)}"


def fixed(value: float, digits: int, places: int) -> str:
    """``value`` with ``digits`` digits before the point (zeros in front) and ``places`` after it."""
    return f"{value:0{digits + 1 + places}.{places}f}" if places else f"{value:0{digits}.0f}"


# ---------------------------------------------------------------------------------------------- DMS
class TestDegreesMinutesSeconds:
    @FAST
    @given(value=latitudes, places=st.integers(0, 4))
    def test_any_latitude_written_as_dms_reads_back(self, value: float, places: int) -> None:
        """Any latitude written as devices write it (seconds rounded, 60 included) reads back within the rounding."""
        reference = "S" if value < 0 else "N"
        read = from_dms(dms(abs(value), places), reference, "S")
        assert read == pytest.approx(value, abs=0.5 * 10**-places / 3600 + 1e-9)
        assert location(read, 1.0) is not None  # still a place on earth: 90° rounded stays 90°

    @FAST
    @given(value=longitudes, places=st.integers(0, 6))
    def test_fractional_minutes_with_zero_seconds_read_back(self, value: float, places: int) -> None:
        """Degrees and minutes with a fraction and zero seconds (the EXIF standard's other form) read back."""
        degrees = math.floor(abs(value))
        minutes = round((abs(value) - degrees) * 60, places)
        read = from_dms((degrees, minutes, 0), "W" if value < 0 else "E", "W")
        assert read == pytest.approx(value, abs=0.5 * 10**-places / 60 + 1e-9)

    @FAST
    @given(parts=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4), reference=st.text(max_size=3))
    def test_any_numbers_give_degrees_or_value_error(self, parts: list[float], reference: str) -> None:
        """Whatever numbers a damaged EXIF block holds: a finite number of degrees, or ValueError."""
        try:
            read = from_dms(parts, reference, "S")
        except ValueError:
            return
        assert math.isfinite(read)
        assert 1 <= len(parts) <= 3 and all(0 <= part <= 60.01 for part in parts[1:])


# ----------------------------------------------------------------------------------------- ISO 6709
class TestIso6709:
    @FAST
    @given(
        lat=latitudes,
        lon=longitudes,
        form=st.sampled_from(["D", "DM", "DMS"]),
        places=st.integers(0, 5),
        alt=st.none() | st.floats(-500, 9000, allow_nan=False),
    )
    def test_every_form_reads_back(self, lat: float, lon: float, form: str, places: int, alt: float | None) -> None:
        """Any position in any ISO 6709 form (±DD.D, ±DDMM.M, ±DDMMSS.S, ±altitude) reads back within its rounding."""
        text = sexagesimal(lat, 2, form, places) + sexagesimal(lon, 3, form, places)
        if alt is not None:
            text += f"{alt:+.3f}"
        place = parse_iso6709(text + "/")
        unit = {"D": 1, "DM": 60, "DMS": 3600}[form]
        tolerance = 0.5 * 10**-places / unit + 1e-7
        if place is None:  # the no-fix position: both written as zero
            assert abs(lat) <= tolerance and abs(lon) <= tolerance, text
            return
        assert place["lat"] == pytest.approx(lat, abs=tolerance), text
        assert place["lon"] == pytest.approx(lon, abs=tolerance), text
        assert place["alt"] == (None if alt is None else pytest.approx(alt, abs=0.001))

    @FAST
    @given(text=junk)
    def test_any_text_gives_a_place_none_or_value_error(self, text: str) -> None:
        """Whatever a location tag holds: a checked place, None (no fix), or ValueError."""
        try:
            place = parse_iso6709(text)
        except ValueError:
            return
        if place is not None:
            assert -90 <= place["lat"] <= 90 and -180 <= place["lon"] <= 180
            assert place["alt"] is None or math.isfinite(place["alt"])


# -------------------------------------------------------------------------------------------- times
offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda minutes: timezone(timedelta(minutes=minutes)))
zones = st.none() | st.just(UTC) | offsets
moments = st.builds(
    lambda moment, zone, fraction: moment.replace(tzinfo=zone, microsecond=moment.microsecond if fraction else 0),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    zones,
    st.booleans(),
)


class TestTimestamps:
    @FAST
    @given(moment=moments)
    def test_iso_time_round_trips(self, moment: datetime) -> None:
        """Any time, with or without an offset or a fraction, written in ISO 8601 reads back unchanged."""
        text = format_timestamp(moment)
        assert parse_timestamp(text) == text
        assert datetime.fromisoformat(text.replace("Z", "+00:00")) == moment

    @FAST
    @given(moment=moments)
    def test_exif_time_with_separate_offset_round_trips(self, moment: datetime) -> None:
        """EXIF's "YYYY:MM:DD HH:MM:SS" with its offset kept apart reads as the same moment."""
        date, time = f"{moment.year:04d}:{moment.month:02d}:{moment.day:02d}", f"{moment:%H:%M:%S}"
        offset = None if moment.tzinfo is None else f"{moment:%z}"[:3] + ":" + f"{moment:%z}"[3:5]
        read = combine(date, time, offset)
        assert read == format_timestamp(moment.replace(microsecond=0))

    @FAST
    @given(text=junk)
    def test_any_text_gives_a_time_none_or_value_error(self, text: str) -> None:
        """Whatever a date tag holds: ISO 8601, None (a placeholder), or ValueError."""
        try:
            read = parse_timestamp(text)
        except ValueError:
            return
        if read is not None:
            datetime.fromisoformat(read.replace("Z", "+00:00"))

    @FAST
    @given(date=junk, time=junk, offset=st.none() | junk)
    def test_any_parts_combine_to_a_time_none_or_value_error(self, date: str, time: str, offset: str | None) -> None:
        """Date, time and offset kept apart (EXIF, BWF), whatever they hold: a time, None, or ValueError."""
        try:
            read = combine(date, time, offset)
        except ValueError:
            return
        if read is not None:
            datetime.fromisoformat(read.replace("Z", "+00:00"))

    def test_placeholders_are_no_time(self) -> None:
        """Cameras whose clock was never set write zeros: no time, not an error."""
        for text in ("0000:00:00 00:00:00", "", "    ", "0000-00-00T00:00:00"):
            assert parse_timestamp(text) is None
