"""The derive stage through the command line: verified access copies and thumbnails, stored and
logged; failures recorded without touching the original."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PIL import Image

from tests.conftest import ffmpeg
from tests.odd_media import counted_frames_clip, one_frame_clip, zero_duration


def two_track_clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:duration=2",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
        str(path),
    )
    return path


def audio_streams(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sum(1 for s in json.loads(out)["streams"] if s["codec_type"] == "audio")


class TestDerive:
    def test_ingest_makes_verified_copies_that_keep_every_audio_track(self, cli, ctx, dock) -> None:
        original = two_track_clip(dock / "REC_0001.mp4")
        source_bytes = original.read_bytes()
        (record,) = cli("ingest", str(original), "--json").records
        assert sorted(record["derivatives"]) == ["contact-sheet:verified", "poster:verified", "video-access:verified"]
        shown = cli("item", record["item"], "--json").records[0]
        by_kind = {d["kind"]: d for d in shown["derivatives"]}
        assert set(by_kind) == {"video-access", "poster", "contact-sheet"}
        assert all(d["verified"] and d["status"] == "verified" and len(d["sha256"]) == 64 for d in by_kind.values())
        access = ctx.store.path(by_kind["video-access"]["sha256"])
        assert audio_streams(access) == 2
        assert ctx.store.path(record["sha256"]).read_bytes() == source_bytes  # the original is untouched
        assert [e["action"] for e in shown["events"]].count("derived") == 3
        assert shown["stages"]["derive"] == "done"

    def test_rerun_does_nothing_unless_forced(self, cli, dock) -> None:
        item_id = cli("ingest", str(two_track_clip(dock / "again.mp4")), "--json").records[0]["item"]
        again = cli("derive", item_id, "--json")
        assert again.exit_code == 0
        assert {r["status"] for r in again.records} == {"skipped"}
        forced = cli("derive", item_id, "--profile", "poster", "--force", "--json")
        assert [(r["kind"], r["status"]) for r in forced.records] == [("poster", "verified")]
        assert cli("derive", item_id, "--profile", "no-such-profile").exit_code == 2

    def test_damaged_original_gives_failed_derivatives_and_an_intact_item(self, cli, ctx, dock, tmp_path) -> None:
        whole = two_track_clip(tmp_path / "whole.mp4").read_bytes()
        (dock / "cut.mp4").write_bytes(whole[: len(whole) // 2])
        (record,) = cli("ingest", str(dock / "cut.mp4"), "--json").records
        assert record["status"] == "stored"
        shown = cli("item", record["item"], "--json").records[0]
        failed = [d for d in shown["derivatives"] if d["status"] == "failed"]
        assert failed and all(d["error"] and not d["verified"] for d in failed)
        assert shown["stages"]["derive"] == "failed"
        assert ctx.store.digest(record["sha256"]) == (record["sha256"], len(whole) // 2)
        assert cli("derive", record["item"], "--force").exit_code == 1

    def test_audio_and_photo_get_their_own_derivatives(self, cli, dock, media) -> None:
        wav = media.variant("voice.wav", dock / "voice.wav")
        jpg = media.variant("photo.jpg", dock / "photo.jpg")
        records = {Path(r["path"]).name: r for r in cli("ingest", str(wav), str(jpg), "--json").records}
        assert sorted(records["voice.wav"]["derivatives"]) == ["audio-access:verified", "waveform:verified"]
        assert records["photo.jpg"]["derivatives"] == ["image-access:verified"]

    def test_deferred_derivatives_are_made_by_derive_pending(self, cli, dock, media) -> None:
        item_id = cli("ingest", str(media.variant("voice.wav", dock / "later.wav")), "--no-derive", "--json")
        item_id = item_id.records[0]["item"]
        assert cli("item", item_id, "--json").records[0]["derivatives"] == []
        made = cli("derive", "--pending", "--json")
        assert made.exit_code == 0
        assert sorted(r["kind"] for r in made.records if r["item"] == item_id) == ["audio-access", "waveform"]

    def test_clips_too_short_for_a_full_sheet_get_one_that_fits(self, cli, ctx, dock) -> None:
        """One frame, zero duration, no duration: each clip gets a verified sheet of one cell per frame."""
        clips = [
            one_frame_clip(dock / "one.mp4"),
            zero_duration(counted_frames_clip(dock / "zero.mov", 0.2)),
            counted_frames_clip(dock / "unknown-length.mkv", 1, 10, pipe=True),
        ]
        result = cli("ingest", *map(str, clips), "--json")
        assert result.exit_code == 0, result.output
        records = {Path(r["path"]).name: r for r in result.records}
        sizes = {}
        for name, record in records.items():
            assert "contact-sheet:verified" in record["derivatives"], record
            shown = cli("item", record["item"], "--json").records[0]
            (sheet,) = [d for d in shown["derivatives"] if d["kind"] == "contact-sheet"]
            with Image.open(ctx.store.path(sheet["sha256"])) as picture:
                sizes[name] = picture.size
        # Cells of 320x240 with 2 pixels between them: 1x1, 4x2 for five frames, 4x3 for ten.
        assert sizes == {"one.mp4": (320, 240), "zero.mov": (1286, 482), "unknown-length.mkv": (1286, 724)}
        again = cli("derive", records["one.mp4"]["item"], "--profile", "contact-sheet", "--force", "--json")
        assert again.exit_code == 0
        assert [(r["kind"], r["status"]) for r in again.records] == [("contact-sheet", "verified")]
