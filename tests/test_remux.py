"""Access copies without needless encoding: an original a browser already plays is stream-copied
into MP4 (same packets, every audio track, index in front), anything else is encoded, and the copy
says which and why; contact sheets come from one ffmpeg run; derivatives made under an older
profile version stay valid. Tiny real media, made by ffmpeg."""

from __future__ import annotations

import struct
import subprocess
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from PIL import Image, ImageStat
from sqlmodel import select

import pipeline.transcode.derive as derive_module
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Derivative
from pipeline.catalog.queries.media import retrieve
from pipeline.catalog.viewer import Viewer
from pipeline.metadata.facts import ExtractionContext, MediaInfo
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.runtime import derive_context
from pipeline.settings import Settings
from pipeline.transcode import (
    Profile,
    contact_sheet_layout,
    load_profiles,
    load_transcode_config,
    make_derivative,
    verify_derivative,
)
from pipeline.transcode.runner import TranscodeRun
from pipeline.transcode.stage import derive
from tests.conftest import Samples, ffmpeg
from tests.odd_media import counted_frames_clip, shade

PROFILES = load_profiles()
TIMEOUT = 60.0
PICTURE = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=1"]
TONES = [
    *("-f", "lavfi", "-i", "sine=frequency=440:duration=1"),
    *("-f", "lavfi", "-i", "sine=frequency=880:duration=1"),
]
X264 = ["-c:v", "libx264", "-preset", "veryfast"]


def probe(path: Path) -> MediaInfo:
    media = (
        FfprobeExtractor(check_integrity=False)
        .extract(path, ExtractionContext(original_name=path.name, media_kind="video"))
        .media
    )
    assert media is not None, f"ffprobe cannot read {path.name}"
    return media


def with_params(profile: Profile, **changes: Any) -> Profile:
    return replace(profile, params=MappingProxyType({**profile.params, **changes}))


def access_copy(source: Path, dest: Path, profile: Profile | None = None) -> derive_module.Derivative:
    made = make_derivative(profile or PROFILES["video-access"], probe(source), source, dest, timeout=TIMEOUT)
    assert made.ok, made.verification.reason
    return made


def packet_digests(path: Path) -> list[str]:
    """The streamhash lines of the packets of every video and audio stream, read without decoding."""
    args = ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-map", "0:a?", "-c", "copy"]
    out = subprocess.run([*args, "-f", "streamhash", "-hash", "sha256", "-"], capture_output=True, check=True)
    return out.stdout.decode().split()


def top_level_boxes(path: Path) -> list[str]:
    """The types of the MP4's top-level boxes, in file order."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        boxes.append(kind.decode("latin-1"))
        at += size if size else len(data)
    return boxes


def stream_facts(path: Path) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,pix_fmt", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.strip(",") for line in out.stdout.split()]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    folder = tmp_path_factory.mktemp("remux")
    tracks = ["-map", "0:v", "-map", "1:a", "-map", "2:a"]
    # As a body camera writes it: H.264 High with B-frames, two AAC tracks, the index at the end.
    ffmpeg(*PICTURE, *TONES, *tracks, *X264, "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / "camera.mp4"))
    ffmpeg(*PICTURE, *TONES, *tracks, *X264, "-pix_fmt", "yuv420p", "-c:a", "aac", str(folder / "camera.ts"))
    ffmpeg(*PICTURE, *X264, "-pix_fmt", "yuv420p10le", str(folder / "ten-bit.mp4"))
    ffmpeg(*PICTURE, *X264, "-pix_fmt", "yuv422p", str(folder / "four-two-two.mp4"))
    ffmpeg(*PICTURE, *TONES[:4], "-c:v", "mpeg2video", "-c:a", "mp2", str(folder / "mpeg2.mpg"))
    ffmpeg(*PICTURE, "-c:v", "mjpeg", str(folder / "mjpeg.avi"))
    ffmpeg(*PICTURE, *TONES[:4], *X264, "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(folder / "pcm.mov"))
    return Samples(folder)


class TestRemux:
    def test_playable_original_is_remuxed_with_its_own_packets(self, clips: Samples, tmp_path: Path) -> None:
        """H.264/AAC in MP4 is stream-copied: the same video and audio packets, both tracks, index in front."""
        source = clips["camera.mp4"]
        assert top_level_boxes(source).index("moov") > top_level_boxes(source).index("mdat")
        made = access_copy(source, tmp_path / "access.mp4")
        assert made.plan is not None and made.plan.how == "remux", made.plan
        assert "H.264 High" in made.plan.why and "2 AAC track(s)" in made.plan.why
        assert ("-c", "copy") in zip(made.run.argv, made.run.argv[1:], strict=False)
        copy = tmp_path / "access.mp4"
        assert packet_digests(copy) == packet_digests(source)
        assert len(packet_digests(copy)) == 3  # one video and two audio streams
        boxes = top_level_boxes(copy)
        assert boxes.index("moov") < boxes.index("mdat"), boxes
        assert made.verification.details["packets"]["same"] is True
        assert made.verification.details["audio_tracks"] == [2, 2]

    def test_mpeg_ts_is_remuxed_and_verified_by_decoding(self, clips: Samples, tmp_path: Path) -> None:
        """H.264/AAC in MPEG-TS is remuxed too; its packets are rewritten for MP4, so only decoding checks it."""
        made = access_copy(clips["camera.ts"], tmp_path / "access.mp4")
        assert made.plan is not None and made.plan.how == "remux"
        assert "packets" not in made.verification.details
        assert stream_facts(tmp_path / "access.mp4") == ["h264,yuv420p", "aac", "aac"]

    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("ten-bit.mp4", "not 8-bit 4:2:0"),
            ("four-two-two.mp4", "not 8-bit 4:2:0"),
            ("mpeg2.mpg", "its video is mpeg2video, not H.264"),
            ("mjpeg.avi", "its video is mjpeg, not H.264"),
            ("pcm.mov", "its audio is pcm_s16le, not AAC or MP3"),
        ],
    )
    def test_unplayable_original_is_encoded(self, clips: Samples, tmp_path: Path, name: str, why: str) -> None:
        """10-bit, 4:2:2, MPEG-2, MJPEG or PCM sound: encoded to H.264 4:2:0 (and AAC), and the copy says why."""
        made = access_copy(
            clips[name], tmp_path / "access.mp4", with_params(PROFILES["video-access"], preset="ultrafast")
        )
        assert made.plan is not None and made.plan.how == "re-encode"
        assert why in made.plan.why
        assert stream_facts(tmp_path / "access.mp4")[0] == "h264,yuv420p"
        assert all(facts == "aac" for facts in stream_facts(tmp_path / "access.mp4")[1:])

    def test_over_the_size_limit_is_encoded_smaller(self, clips: Samples, tmp_path: Path) -> None:
        """A playable clip larger than the profile allows is encoded down to the limit, keeping its shape."""
        profile = with_params(PROFILES["video-access"], max_width=256, max_height=144, preset="ultrafast")
        made = access_copy(clips["camera.mp4"], tmp_path / "access.mp4", profile)
        assert made.plan is not None and made.plan.how == "re-encode"
        assert "its picture (320x240) is larger than 256x144" in made.plan.why
        assert made.verification.details["size"] == [192, 144]
        assert made.verification.details["audio_tracks"] == [2, 2]

    def test_profile_can_ask_for_encoding(self, clips: Samples, tmp_path: Path) -> None:
        """With remux = false every copy is encoded, at the profile's preset."""
        profile = with_params(PROFILES["video-access"], remux=False, preset="ultrafast")
        made = access_copy(clips["camera.mp4"], tmp_path / "access.mp4", profile)
        assert made.plan is not None and made.plan.how == "re-encode"
        assert "ultrafast" in made.run.argv and "libx264" in made.run.argv

    def test_damaged_original_is_encoded_when_its_copy_does_not_decode(self, clips: Samples, tmp_path: Path) -> None:
        """A playable original with damaged pictures is not copied as it is: the stream copy fails its
        decoding check, and the copy is encoded instead, saying why."""
        source = tmp_path / "damaged.mp4"
        ffmpeg(*PICTURE, *X264, "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(source))
        data = bytearray(source.read_bytes())
        middle = data.index(b"mdat") + (len(data) - data.index(b"mdat")) // 2
        data[middle : middle + 64] = bytes(64)
        source.write_bytes(bytes(data))
        made = access_copy(source, tmp_path / "access.mp4", with_params(PROFILES["video-access"], preset="ultrafast"))
        assert made.plan is not None and made.plan.how == "re-encode"
        assert "a stream copy was tried" in made.plan.why and "does not decode cleanly" in made.plan.why


@pytest.fixture(scope="module")
def hevc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hevc") / "hevc.mp4"
    x265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p"]
    try:
        ffmpeg(*PICTURE, *x265, str(path))
    except subprocess.CalledProcessError:
        pytest.skip("this ffmpeg cannot encode HEVC")
    return path


class TestHevc:
    def test_hevc_is_remuxed_only_where_the_profile_allows(self, hevc: Path, tmp_path: Path) -> None:
        """HEVC Main is encoded to H.264 by default, and stream-copied (tagged hvc1) with remux_hevc."""
        default = access_copy(hevc, tmp_path / "a.mp4", with_params(PROFILES["video-access"], preset="ultrafast"))
        assert default.plan is not None and default.plan.how == "re-encode"
        assert "HEVC, which the profile does not copy" in default.plan.why
        allowed = access_copy(hevc, tmp_path / "b.mp4", with_params(PROFILES["video-access"], remux_hevc=True))
        assert allowed.plan is not None and allowed.plan.how == "remux"
        assert packet_digests(tmp_path / "b.mp4") == packet_digests(hevc)
        tag = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_tag_string",
                "-of",
                "csv=p=0",
                tmp_path / "b.mp4",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert tag.stdout.strip() == "hvc1"


class TestContactSheetInOneRun:
    def test_sixteen_cells_from_one_ffmpeg_run(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 2 s clip gives a 4x4 sheet of sixteen different frames, from one ffmpeg run reading it once."""
        source = counted_frames_clip(tmp_path / "shades.mp4", 2)
        runs: list[TranscodeRun] = []
        real = derive_module.run_transcode

        def counted(*args: Any, **kwargs: Any) -> TranscodeRun:
            runs.append(real(*args, **kwargs))
            return runs[-1]

        monkeypatch.setattr(derive_module, "run_transcode", counted)
        profile = PROFILES["contact-sheet"]
        made = make_derivative(profile, probe(source), source, tmp_path / "sheet.jpg", timeout=TIMEOUT, font=None)
        assert made.ok, made.verification.reason
        assert len(runs) == 1 and runs[0].argv.count("-i") == 1 and "-ss" not in runs[0].argv
        assert made.verification.details["grid"] == [4, 4]
        cells = made.verification.details["cells"]
        assert len(cells) == len(set(cells)) == 16
        with Image.open(tmp_path / "sheet.jpg") as sheet:
            assert sheet.size == (4 * 320 + 3 * 2, 4 * 240 + 3 * 2)
            grey = sheet.convert("L")
        # Each cell shows its own frame, the one the layout names (frame k has shade(k)).
        for number, frame in enumerate(contact_sheet_layout(profile, probe(source)).frames):
            row, column = divmod(number, 4)
            left, top = column * 322, row * 242
            mean = ImageStat.Stat(grey.crop((left + 100, top + 20, left + 220, top + 100))).mean[0]
            # The shades are limited-range luma; the JPEG holds them full range.
            assert mean == pytest.approx((shade(frame) - 16) * 255 / 219, abs=4), (number, frame)


class TestOlderProfileVersions:
    OLD = """
        [[profile]]
        name = "video-access"
        version = 1
        kind = "video-access"
        applies_to = ["video"]
        crf = 23
        preset = "ultrafast"
        remux = false
    """

    def test_copies_made_under_version_1_stay_valid(self, cli, settings: Settings, dock: Path, tmp_path: Path) -> None:
        """After the profile's version is raised, a copy made under the old one is not made again, is
        still the one served, and still verifies; forcing makes one under the new version."""
        original = dock / "REC_0002.mp4"
        ffmpeg(*PICTURE, *TONES, "-map", "0:v", "-map", "1:a", "-map", "2:a", *X264, "-c:a", "aac", str(original))
        (record,) = cli("ingest", str(original), "--no-derive", "--json").records
        item_id = str(record["item"])
        old_path = tmp_path / "old.toml"
        old_path.write_text(self.OLD, encoding="utf-8")
        current = derive_context(settings, actor="tester")
        old = replace(current, config=load_transcode_config(old_path))

        (made,) = derive(old, [item_id], only=("video-access",))
        assert (made.profile, made.status) == ("video-access@1", "verified")
        assert made.access is not None and made.access["how"] == "re-encode"

        (again,) = derive(current, [item_id], only=("video-access",))
        assert (again.profile, again.status, again.sha256) == ("video-access@1", "skipped", made.sha256)
        with session_scope(current.engine) as session:
            rows = session.exec(select(Derivative).where(Derivative.item_id == item_id)).all()
            assert [(row.profile, row.profile_version) for row in rows] == [("video-access", 1)]
            served = retrieve(
                session,
                viewer=Viewer.local("tester"),
                store=current.store,
                ident=item_id,
                what="access",
                purpose=None,
                via="test",
                tool="test",
            )
        assert (served.sha256, served.profile) == (made.sha256, "video-access@1")
        source = current.store.path(str(record["sha256"]))
        assert made.sha256 is not None
        checked = verify_derivative(
            current.config.profiles["video-access"],
            probe(source),
            source,
            current.store.path(made.sha256),
            timeout=TIMEOUT,
        )
        assert checked.ok, checked.reason

        (forced,) = derive(current, [item_id], only=("video-access",), force=True)
        assert (forced.profile, forced.status) == ("video-access@2", "verified")
        assert forced.access is not None and forced.access["how"] == "remux"
        with session_scope(current.engine) as session:
            versions = session.exec(select(Derivative.profile_version).where(Derivative.item_id == item_id)).all()
        assert sorted(versions) == [1, 2]
