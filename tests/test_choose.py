"""Choosing the facts in force from sources that disagree, and noticing a wrong device clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pipeline.probe.choose import Candidate, Directory, choose, clock_drift, derived

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOBODY = Directory({}, {}, {})


class TestChoose:
    def test_manual_value_wins_and_others_are_named(self) -> None:
        candidates = [
            Candidate("collector", "012345", "filename:cn-bodycam"),
            Candidate("collector", "099999", "manual:custodian"),
        ]
        chosen = choose(candidates, SHANGHAI)
        assert chosen["collector"].value == "099999"
        assert chosen["collector"].source == "manual:custodian"
        assert "disagreeing: filename:cn-bodycam" in chosen["collector"].reason

    def test_naive_time_is_read_in_the_site_zone(self) -> None:
        """A file name's 14:30 in Shanghai is 06:30 UTC."""
        chosen = choose([Candidate("captured_at", "2025-09-30T14:30:15", "filename:cn-bodycam")], SHANGHAI)
        assert chosen["captured_at"].value == datetime(2025, 9, 30, 6, 30, 15, tzinfo=UTC)

    def test_device_time_with_offset_beats_the_file_name(self) -> None:
        candidates = [
            Candidate("captured_at", "2025-09-30T14:30:15", "filename:cn-bodycam"),
            Candidate("captured_at", "2025-09-30T06:30:20Z", "ffprobe:format.tags.creation_time"),
        ]
        chosen = choose(candidates, SHANGHAI)
        assert chosen["captured_at"].source.startswith("ffprobe")
        assert chosen["captured_at"].value == datetime(2025, 9, 30, 6, 30, 20, tzinfo=UTC)

    def test_unreadable_time_is_skipped(self) -> None:
        chosen = choose([Candidate("captured_at", "0000:00:00 00:00:00", "exif:EXIF DateTimeOriginal")], SHANGHAI)
        assert "captured_at" not in chosen


class TestDerived:
    def test_officer_from_device_and_place_from_dock_and_gps(self) -> None:
        directory = Directory({"DSJ0001": "012345"}, {"dock1": "Xuhui traffic brigade"}, {})
        facts = [
            Candidate("device_serial", "DSJ0001", "exif:Image BodySerialNumber"),
            Candidate("location", {"lat": 31.2304, "lon": 121.4737, "alt": None}, "exif:GPS"),
        ]
        extra = derived(facts, dock="dock1", directory=directory)
        assert Candidate("collector", "012345", "config:devices") in extra
        assert Candidate("captured_place", "Xuhui traffic brigade", "config:docks") in extra
        assert Candidate("captured_place", "GPS 31.230400, 121.473700", "location:exif:GPS") in extra
        chosen = choose([*facts, *extra], SHANGHAI)
        assert chosen["captured_place"].value == "Xuhui traffic brigade"


class TestClockDrift:
    def test_file_name_and_device_time_disagree(self) -> None:
        candidates = [
            Candidate("captured_at", "2025-09-30T14:30:15", "filename:cn-bodycam"),
            Candidate("captured_at", "2025-09-30T07:30:15Z", "ffprobe:format.tags.creation_time"),
        ]
        chosen = choose(candidates, SHANGHAI)
        reason = clock_drift(candidates, chosen, None, SHANGHAI, 300)
        assert reason is not None and "3600 s" in reason

    def test_recorded_after_arrival(self) -> None:
        candidates = [Candidate("captured_at", "2025-10-01T12:00:00+08:00", "exif:EXIF DateTimeOriginal")]
        chosen = choose(candidates, SHANGHAI)
        received = datetime(2025, 10, 1, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, an hour before "capture"
        assert "after it was received" in (clock_drift(candidates, chosen, received, SHANGHAI, 300) or "")

    def test_agreeing_clocks_are_fine(self) -> None:
        candidates = [
            Candidate("captured_at", "2025-09-30T14:30:15", "filename:cn-bodycam"),
            Candidate("captured_at", "2025-09-30T06:30:17Z", "ffprobe:format.tags.creation_time"),
        ]
        chosen = choose(candidates, SHANGHAI)
        assert clock_drift(candidates, chosen, datetime(2025, 10, 1, tzinfo=UTC), SHANGHAI, 300) is None
