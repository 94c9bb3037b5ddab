"""The probe stage through the command line: facts with their sources, issues, deadline, late flags,
manual assignment, cases and the overdue list."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ffmpeg, make_clip

SHANGHAI = ZoneInfo("Asia/Shanghai")


def clip(path: Path, *, creation: datetime | None = None, location: str | None = None) -> Path:
    """A one-second MP4 with the QuickTime tags a body camera writes."""
    tags = []
    if creation:
        tags += ["-metadata", f"creation_time={creation.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"]
    if location:
        tags += ["-metadata", f"location={location}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_clip(path, *tags, "-movflags", "use_metadata_tags")


def bodycam_name(captured: datetime, serial: str = "DSJ0001", officer: str = "012345", imp: bool = False) -> str:
    local = captured.astimezone(SHANGHAI)
    return f"{serial}_{officer}_{local:%Y%m%d%H%M%S}_0001{'_IMP' if imp else ''}.MP4"


@pytest.fixture
def recent() -> datetime:
    """A capture time yesterday noon in Shanghai: uploaded today, it is on time."""
    today = datetime.now(SHANGHAI).replace(hour=12, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


class TestProbe:
    def test_facts_come_with_their_sources(self, cli, dock, recent) -> None:
        path = clip(dock / bodycam_name(recent), creation=recent, location="+31.2304+121.4737/")
        (record,) = cli("ingest", str(path), "--json").records
        assert record["status"] == "stored"
        shown = cli("item", record["item"], "--json").records[0]
        facts = shown["facts"]
        assert set(facts) == {"case_number", "captured_at", "captured_place", "collector", "proof_object"}
        assert datetime.fromisoformat(facts["captured_at"]["value"]) == recent
        assert facts["captured_at"]["source"].startswith("ffprobe")
        assert facts["collector"] == {"value": "012345", "source": "filename:cn-bodycam"}
        assert facts["captured_place"]["value"] == "GPS 31.230400, 121.473700"
        assert facts["case_number"] == {"value": None, "source": None}
        codes = {i["code"] for i in shown["issues"]}
        assert {"missing-case-number", "missing-proof-object"} <= codes
        assert "late" not in codes and shown["late"] is False and shown["working_days_late"] == 0
        assert shown["deadline"] is not None
        assert shown["stages"] == {"intake": "done", "probe": "done", "derive": "done"}
        assert any(c["source"].startswith("filename") and c["field"] == "captured_at" for c in shown["candidates"])
        assert set(record["issues"]) == codes

    def test_old_capture_is_flagged_late_but_kept(self, cli, dock) -> None:
        """Captured before the 2025 National Day holiday, uploaded now: late, working days counted."""
        captured = datetime(2025, 9, 30, 10, 0, tzinfo=SHANGHAI)
        path = clip(dock / bodycam_name(captured), creation=captured)
        (record,) = cli("ingest", str(path), "--json").records
        shown = cli("item", record["item"], "--json").records[0]
        assert shown["deadline"] == "2025-10-11T16:00:00+00:00"
        assert shown["late"] is True and shown["working_days_late"] > 200
        assert "late" in {i["code"] for i in shown["issues"]}
        (group,) = cli("overdue", "--json").records
        assert (group["officer"], group["dock"], group["count"]) == ("012345", "dock1", 1)
        assert group["items"][0]["working_days_late"] == shown["working_days_late"]

    def test_assign_fills_the_work_queue_gaps_and_is_logged(self, cli, dock, recent) -> None:
        path = clip(dock / bodycam_name(recent), creation=recent, location="+31.2304+121.4737/")
        item_id = cli("ingest", str(path), "--json").records[0]["item"]
        assert [i["id"] for i in cli("items", "--missing", "case_number", "--json").records] == [item_id]
        result = cli("assign", item_id, "--case", "A2025-001", "--proof-object", "酒驾现场", "--json")
        assert result.exit_code == 0
        change = result.records[0]
        assert change["changes"]["case_number"] == {"old": None, "new": "A2025-001"}
        assert "missing-case-number" not in change["issues"]
        shown = cli("item", item_id, "--json").records[0]
        assert shown["facts"]["proof_object"]["value"] == "酒驾现场"
        assert shown["facts"]["proof_object"]["source"] == "manual:tester"
        assigned = [e for e in shown["events"] if e["action"] == "assigned"]
        assert assigned[0]["details"]["changes"]["proof_object"]["new"] == "酒驾现场"
        assert cli("items", "--missing", "case_number", "--json").records == []
        assert [i["id"] for i in cli("items", "--case", "A2025-001", "--json").records] == [item_id]

    def test_assign_sets_a_capture_time_the_file_lacks_and_the_deadline_follows(self, cli, dock, recent) -> None:
        item_id = cli("ingest", str(clip(dock / "a.mp4")), "--json").records[0]["item"]
        assert [i["id"] for i in cli("items", "--issue", "capture-time-unknown", "--json").records] == [item_id]
        local = recent.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")  # no offset: site time
        change = cli("assign", item_id, "--captured-at", local, "--json").records[0]
        assert change["changes"]["captured_at"] == {"old": None, "new": recent.isoformat()}
        assert "capture-time-unknown" not in change["issues"] and "late" not in change["issues"]
        shown = cli("item", item_id, "--json").records[0]
        assert datetime.fromisoformat(shown["facts"]["captured_at"]["value"]) == recent
        assert shown["facts"]["captured_at"]["source"] == "manual:tester"
        assert shown["deadline"] is not None and shown["late"] is False
        assert cli("items", "--issue", "capture-time-unknown", "--json").records == []

    def test_a_custodians_capture_time_wins_over_the_devices_and_can_make_it_late(self, cli, dock, recent) -> None:
        item_id = cli("ingest", str(clip(dock / "b.mp4", creation=recent)), "--json").records[0]["item"]
        assert cli("item", item_id, "--json").records[0]["late"] is False
        result = cli("assign", item_id, "--captured-at", "2025-09-30T10:00:00+08:00", "--json")
        assert result.exit_code == 0
        old = result.records[0]["changes"]["captured_at"]["old"]
        assert datetime.fromisoformat(old) == recent
        shown = cli("item", item_id, "--json").records[0]
        assert shown["facts"]["captured_at"]["source"] == "manual:tester"
        assert shown["deadline"] == "2025-10-11T16:00:00+00:00" and shown["late"] is True
        assert "clock-drift" not in {i["code"] for i in shown["issues"]}

    def test_assign_refuses_capture_times_that_cannot_be(self, cli, dock, monkeypatch) -> None:
        monkeypatch.setenv("EVIDENCE_CLOCK_DRIFT_TOLERANCE", "0")
        item_id = cli("ingest", str(clip(dock / "c.mp4")), "--json").records[0]["item"]
        unreadable = cli("assign", item_id, "--captured-at", "last tuesday")
        assert unreadable.exit_code == 2 and "'last tuesday' is not a time" in unreadable.errors
        future = cli("assign", item_id, "--captured-at", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
        assert future.exit_code == 2 and "lies in the future" in future.errors
        received = datetime.fromisoformat(cli("item", item_id, "--json").records[0]["received_at"])
        time.sleep(max(0.0, (received + timedelta(seconds=1.5) - datetime.now(UTC)).total_seconds()))
        after = cli("assign", item_id, "--captured-at", (received + timedelta(seconds=1)).isoformat(), "--json")
        assert after.exit_code == 1 and "after the record arrived" in after.records[0]["error"]
        shown = cli("item", item_id, "--json").records[0]
        assert shown["facts"]["captured_at"]["value"] is None
        assert not [e for e in shown["events"] if e["action"] == "assigned"]

    def test_case_target_finds_all_records_of_one_target(self, cli, dock, recent) -> None:
        first = clip(dock / bodycam_name(recent, serial="DSJ0001"), creation=recent)
        second = clip(
            dock / bodycam_name(recent + timedelta(minutes=5), serial="DSJ0002"), creation=recent + timedelta(minutes=5)
        )
        ids = [r["item"] for r in cli("ingest", str(first), str(second), "--json").records]
        cli("assign", ids[0], "--case", "C1")
        cli("assign", ids[1], "--case", "C2")
        assert cli("case", "C1", "--target", "某某运输有限公司").exit_code == 0
        assert cli("case", "C2", "--target", "某某运输有限公司").exit_code == 0
        found = cli("items", "--target", "某某运输有限公司", "--json").records
        assert sorted(i["id"] for i in found) == sorted(ids)
        case = cli("case", "C1", "--json").records[0]
        assert (case["target"], case["count"]) == ("某某运输有限公司", 1)

    def test_damaged_and_unsupported_files_are_kept_and_flagged(self, cli, dock, recent, tmp_path) -> None:
        whole = clip(tmp_path / "whole.mp4", creation=recent)
        data = whole.read_bytes()
        (dock / "cut.mp4").write_bytes(data[: len(data) // 2])
        (dock / "notes.txt").write_text("not a recording")
        records = {Path(r["path"]).name: r for r in cli("ingest", str(dock), "--json").records}
        assert records["cut.mp4"]["status"] == "stored" and records["notes.txt"]["status"] == "stored"
        assert "damaged-media" in records["cut.mp4"]["issues"]
        assert "unsupported-type" in records["notes.txt"]["issues"]
        for record in records.values():  # each code once, though several readers may report it
            assert len(record["issues"]) == len(set(record["issues"])), record["issues"]
        shown = cli("item", str(records["notes.txt"]["item"]), "--json").records[0]
        codes = [issue["code"] for issue in shown["issues"]]
        assert len(codes) == len(set(codes)), codes
        damaged = cli("items", "--issue", "damaged-media", "--json").records
        assert [i["original_name"] for i in damaged] == ["cut.mp4"]

    def test_a_video_named_file_holding_only_sound_is_treated_as_audio(self, cli, dock) -> None:
        """An .mp4 with no picture (recorders write these) gets an audio copy and a waveform, not
        three failed video derivatives; the custody record says the kind changed."""
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(dock / "voice.mp4"))
        (record,) = cli("ingest", str(dock), "--json").records
        assert sorted(record["derivatives"]) == ["audio-access:verified", "waveform:verified"]
        shown = cli("item", str(record["item"]), "--json").records[0]
        assert shown["media_kind"] == "audio"
        probed = [e for e in shown["events"] if e["action"] == "probed"]
        assert probed[0]["details"]["media_kind"] == {"from": "video", "to": "audio"}

    def test_assign_refuses_nothing_to_do_and_reports_unknown_items(self, cli, dock, recent) -> None:
        item_id = cli("ingest", str(clip(dock / "a.mp4", creation=recent)), "--json").records[0]["item"]
        assert cli("assign", item_id).exit_code == 2
        result = cli("assign", item_id, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", "--case", "C9", "--json")
        assert result.exit_code == 1
        assert [r.get("error") is None for r in result.records] == [True, False]


class TestDirectory:
    def test_dock_and_device_config_supply_place_and_collector(self, cli, dock, recent, tmp_path, monkeypatch) -> None:
        """A dock serving one officer at one place fills those facts for files that carry neither."""
        directory = tmp_path / "devices.toml"
        directory.write_text('[docks."dock1"]\nplace = "徐汇交警支队"\nofficer = "054321"\n', encoding="utf-8")
        monkeypatch.setenv("EVIDENCE_DEVICES", str(directory))
        item_id = cli("ingest", str(clip(dock / "plain.mp4", creation=recent)), "--json").records[0]["item"]
        facts = cli("item", item_id, "--json").records[0]["facts"]
        assert facts["captured_place"] == {"value": "徐汇交警支队", "source": "config:docks"}
        assert facts["collector"] == {"value": "054321", "source": "config:docks"}

    def test_broken_directory_is_a_clear_error(self, cli, dock, recent, tmp_path, monkeypatch) -> None:
        directory = tmp_path / "devices.toml"
        directory.write_text('[devices."DSJ0001"]\nofficer = 12\n', encoding="utf-8")
        monkeypatch.setenv("EVIDENCE_DEVICES", str(directory))
        with pytest.raises(Exception, match=r'devices\."DSJ0001" needs officer'):
            cli("ingest", str(clip(dock / "plain.mp4", creation=recent)), "--json")


class TestDeferredProbe:
    def test_ingest_now_probe_later(self, cli, dock, recent) -> None:
        """`ingest --no-probe` takes files in fast; `evidence probe --pending` reads their metadata."""
        path = clip(dock / bodycam_name(recent), creation=recent)
        (record,) = cli("ingest", str(path), "--no-probe", "--json").records
        assert "issues" not in record
        before = cli("item", record["item"], "--json").records[0]
        assert before["stages"] == {"intake": "done", "probe": "pending", "derive": "pending"}
        assert before["facts"]["collector"]["value"] is None
        result = cli("probe", "--pending", "--json")
        assert result.exit_code == 0
        assert [(r["item"], r["status"]) for r in result.records] == [(record["item"], "probed")]
        after = cli("item", record["item"], "--json").records[0]
        assert after["stages"]["probe"] == "done"
        assert after["facts"]["collector"]["value"] == "012345"
        assert cli("probe", "--pending", "--json").records == []

    def test_probe_needs_items_or_pending(self, cli) -> None:
        assert cli("probe").exit_code == 2
