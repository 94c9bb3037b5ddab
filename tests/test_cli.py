"""The `evidence` command's contract: JSON keys, statuses, exit codes."""

from __future__ import annotations

import os
from pathlib import Path


class TestIngestCommand:
    def test_json_lines_carry_the_contract_keys(self, cli, dock, media) -> None:
        media.variant("clip.mp4", dock / "A.mp4", 1)
        media.variant("clip.mp4", dock / "B.mp4", 1)  # same bytes as A
        media.variant("voice.wav", dock / "C.wav")
        result = cli("ingest", str(dock), "--json")
        assert result.exit_code == 0
        records = result.records
        assert [Path(r["path"]).name for r in records] == ["A.mp4", "B.mp4", "C.wav"]
        assert [r["status"] for r in records] == ["stored", "duplicate", "stored"]
        for record in records:
            assert {"path", "item", "sha256", "size", "status"} <= set(record)
            assert len(record["sha256"]) == 64 and record["size"] > 0
        assert records[0]["item"] == records[1]["item"]

    def test_temp_and_hidden_files_are_ignored_and_left(self, cli, dock, media) -> None:
        for name in ("upload.mp4.part", "~lock.mp4", ".DS_Store", "copy.tmp"):
            media.variant("clip.mp4", dock / name)
        result = cli("ingest", str(dock), "--json")
        assert result.exit_code == 0
        assert {r["status"] for r in result.records} == {"ignored"}
        assert len(result.records) == 4
        assert sorted(p.name for p in dock.iterdir()) == [".DS_Store", "copy.tmp", "upload.mp4.part", "~lock.mp4"]

    def test_the_pipelines_own_folders_are_not_taken_in(self, cli, dock, media, settings) -> None:
        """A file in the uploads folder (still being received) or in the store is ignored with the
        reason, and left as it is; nothing is catalogued from there."""
        stored = cli("ingest", str(media.variant("clip.mp4", dock / "A.mp4", 1)), "--json").records[0]
        settings.uploads_dir.mkdir(parents=True, exist_ok=True)
        receiving = media.variant("voice.wav", settings.uploads_dir / "arriving.wav")
        result = cli("ingest", str(receiving), str(settings.store_dir), "--json")
        assert result.exit_code == 0
        by_name = {Path(r["path"]).name: r for r in result.records}
        assert by_name["arriving.wav"]["status"] == "ignored" and "upload" in by_name["arriving.wav"]["error"]
        assert by_name[stored["sha256"]]["status"] == "ignored" and "store" in by_name[stored["sha256"]]["error"]
        assert receiving.exists() and len(cli("items", "--json").records) == 1

    def test_failure_makes_the_exit_code_non_zero(self, cli, dock, media, tmp_path) -> None:
        """Every input is processed; one failure (a zero-byte file, a missing path) fails the run."""
        media.variant("clip.mp4", dock / "good.mp4")
        (dock / "empty.mp4").touch()
        result = cli("ingest", str(dock), str(tmp_path / "no-such-file.mp4"), "--json")
        assert result.exit_code == 1
        by_name = {Path(r["path"]).name: r for r in result.records}
        assert by_name["good.mp4"]["status"] == "stored"
        assert by_name["empty.mp4"]["status"] == "failed" and "zero-byte" in by_name["empty.mp4"]["error"]
        assert by_name["no-such-file.mp4"]["status"] == "failed"
        assert "no such file" in by_name["no-such-file.mp4"]["error"]

    def test_files_from_outside_the_inbox_are_left_in_place(self, cli, media, tmp_path) -> None:
        """The user's own folder is read, never emptied; running again reports duplicates."""
        outside = media.variant("photo.jpg", tmp_path / "usb" / "IMG_0001.jpg")
        first = cli("ingest", str(outside), "--dock", "front-desk", "--json").records
        second = cli("ingest", str(outside), "--dock", "front-desk", "--json").records
        assert outside.exists()
        assert (first[0]["status"], second[0]["status"]) == ("stored", "duplicate")
        assert first[0]["dock"] == "front-desk"

    def test_source_policy_flag_moves_outside_files(self, cli, media, tmp_path, settings) -> None:
        outside = media.variant("photo.jpg", tmp_path / "usb" / "IMG_0002.jpg")
        result = cli("ingest", str(outside), "--source-policy", "move", "--json")
        assert result.records[0]["disposition"] == "moved"
        assert not outside.exists()
        assert (settings.processed_dir / "manual" / "IMG_0002.jpg").exists()

    def test_sm3_digest_when_configured(self, cli, dock, media, monkeypatch) -> None:
        monkeypatch.setenv("EVIDENCE_EXTRA_DIGESTS", '["sm3"]')
        media.variant("clip.mp4", dock / "sm3.mp4")
        record = cli("ingest", str(dock), "--json").records[0]
        item = cli("item", record["item"], "--json").records[0]
        assert set(item["digests"]) == {"sm3"} and len(item["digests"]["sm3"]) == 64


class TestItemsCommands:
    def test_items_json_keys_and_filters(self, cli, settings, media) -> None:
        for dock_name, sample in (("dock1", "clip.mp4"), ("dock2", "voice.wav")):
            media.variant(sample, settings.inbox_dir / dock_name / sample)
        assert cli("ingest", str(settings.inbox_dir), "--json").exit_code == 0
        items = cli("items", "--json").records
        assert len(items) == 2
        for item in items:
            assert {"id", "sha256", "size", "original_name", "dock", "status"} <= set(item)
        assert [i["original_name"] for i in cli("items", "--dock", "dock2", "--json").records] == ["voice.wav"]
        assert [i["media_kind"] for i in cli("items", "--kind", "video", "--json").records] == ["video"]

    def test_item_shows_history_and_records_the_view(self, cli, dock, media) -> None:
        record = cli("ingest", str(media.variant("clip.mp4", dock / "v.mp4")), "--json").records[0]
        shown = cli("item", record["sha256"][:12], "--json").records[0]
        assert shown["id"] == record["item"]
        assert [s["status"] for s in shown["sightings"]] == ["stored"]
        assert shown["stages"] == {"intake": "done", "probe": "done", "derive": "done"}
        actions = [e["action"] for e in shown["events"]]
        assert actions[0] == "ingested" and actions[-1] == "viewed"
        assert shown["events"][-1]["actor"] == "tester"

    def test_unknown_item_is_a_clear_error(self, cli) -> None:
        result = cli("item", "01ZZZZZZZZZZZZZZZZZZZZZZZZ")
        assert result.exit_code == 1

    def test_readable_name_in_listing_for_gbk_file(self, cli, dock, media) -> None:
        path = os.path.join(os.fsencode(dock), "现场录像.mp4".encode("gbk"))
        with open(path, "wb") as handle:
            handle.write((media.folder / "clip.mp4").read_bytes())
        records = cli("ingest", str(dock), "--json").records
        assert records[0]["path"].endswith("现场录像.mp4")
        assert cli("items", "--json").records[0]["original_name"] == "现场录像.mp4"
