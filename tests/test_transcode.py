"""Transcoding: access copies that play in any browser, pictures of recordings and a lossless
preservation master, each made by ffmpeg from a profile and verified, from tiny real media made by
ffmpeg and Pillow. The original is only ever read."""

from __future__ import annotations

import hashlib
import subprocess
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, ImageStat

from pipeline.metadata.facts import ExtractionContext, MediaInfo, StreamInfo
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.transcode import (
    Profile,
    ProfileError,
    TranscodeError,
    TranscodeTimeoutError,
    build_command,
    contact_sheet_layout,
    find_font,
    load_profiles,
    load_transcode_config,
    make_derivative,
    run_transcode,
    timestamp_label,
    verify_derivative,
    verify_lossless,
)
from tests.conftest import Samples
from tests.odd_media import counted_frames_clip, empty_edit, shade, zero_duration

PROFILES = load_profiles()
TIMEOUT = 60.0


# ------------------------------------------------------------------------------------------- media
def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def video(size: str, seconds: float = 1, rate: int = 5) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}"]


def tone(frequency: int, seconds: float = 1) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:duration={seconds}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def probe(path: Path, kind: str = "video") -> MediaInfo:
    media = (
        FfprobeExtractor(check_integrity=False)
        .extract(path, ExtractionContext(original_name=path.name, media_kind=kind))
        .media
    )
    assert media is not None, f"ffprobe cannot read {path.name}"
    return media


FFPROBE_FRAMES = ["ffprobe", "-v", "error", "-select_streams", "v:0"]
FFPROBE_FRAMES += ["-show_entries", "frame=best_effort_timestamp_time", "-of", "csv=p=0"]


def frame_times(path: Path) -> list[float]:
    """Presentation times of every video frame, relative to the first."""
    out = subprocess.run(
        [*FFPROBE_FRAMES, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = [float(line.strip().strip(",")) for line in out.splitlines() if line.strip().strip(",")]
    return [round(t - times[0], 3) for t in times]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fast(profile: Profile, **changes: Any) -> Profile:
    """The profile with x264's fastest preset (and any other changes), to keep the tests quick."""
    params = dict(profile.params)
    if profile.kind == "video-access":
        params["preset"] = "ultrafast"
    params.update(changes)
    return replace(profile, params=MappingProxyType(params))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Every sample made once for the module."""
    folder = tmp_path_factory.mktemp("transcode")
    two_tracks = ["-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, "-c:a", "aac"]
    ffmpeg(*video("1366x768", 2), *tone(440, 2), *tone(880, 2), *two_tracks, str(folder / "two-tracks.mp4"))
    ffmpeg(*video("3840x2160", 0.6), *tone(440, 0.6), *H264, "-c:a", "aac", "-shortest", str(folder / "uhd.mp4"))
    ffmpeg(*video("720x1280"), *H264, str(folder / "portrait.mp4"))
    ffmpeg(*video("641x479"), *H264[:4], str(folder / "odd.mkv"))
    # Variable frame rate, as a body camera writes in low light: 1 s at 5 fps, then 1 s at 20 fps.
    segments = "[0:v][1:v]concat=n=2:v=1:a=0"
    ffmpeg(
        *video("160x120"),
        *video("160x120", rate=20),
        "-filter_complex",
        segments,
        *H264,
        "-fps_mode",
        "passthrough",
        str(folder / "vfr.mp4"),
    )
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-ac", "2", str(folder / "voice.wav"))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored landscape, shown rotated 90° clockwise
    Image.new("RGB", (64, 48), "red").save(folder / "rotated.jpg", exif=exif)
    # Cut short while recording: the MP4 index (written last) is gone, and with it every stream.
    whole = (folder / "two-tracks.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(whole[: len(whole) * 6 // 10])
    # Cut short with the index in front: readable, but a third of the recording is missing.
    ffmpeg(*video("320x240", 3), *tone(440, 3), *H264, "-c:a", "aac", "-movflags", "+faststart", str(folder / "f.mp4"))
    front = (folder / "f.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(front[: len(front) * 6 // 10])
    return Samples(folder)


@pytest.fixture(scope="module")
def master(samples: Samples, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A preservation master of the two-track clip."""
    dest = tmp_path_factory.mktemp("master") / "two-tracks.mkv"
    made = make_derivative(
        PROFILES["preservation-master"],
        probe(samples["two-tracks.mp4"]),
        samples["two-tracks.mp4"],
        dest,
        timeout=TIMEOUT,
    )
    assert made.ok, made.verification.reason
    return dest


# ------------------------------------------------------------------------------------- profiles
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestProfiles:
    def test_shipped_profiles(self) -> None:
        """The shipped file defines every derivative, with a version, and no preservation master by default."""
        config = load_transcode_config()
        assert set(config.profiles) == {
            "video-access",
            "audio-access",
            "image-access",
            "poster",
            "contact-sheet",
            "waveform",
            "preservation-master",
        }
        assert all(profile.version >= 1 for profile in config.profiles.values())
        access, sheet = config.profiles["video-access"], config.profiles["contact-sheet"]
        assert (access.version, access["remux"], access["remux_hevc"], access["preset"]) == (2, True, False, "veryfast")
        assert sheet.version == 2
        assert [p.name for p in config.for_media_kind("video")] == ["video-access", "poster", "contact-sheet"]
        assert [p.name for p in config.for_media_kind("audio")] == ["audio-access", "waveform"]
        assert [p.name for p in config.for_media_kind("image")] == ["image-access"]

    def test_policy_turns_the_master_on(self, tmp_path: Path) -> None:
        """Listing a media kind under [policy] preservation adds the master for that kind only."""
        text = PROFILES_TEXT.replace("preservation = []", 'preservation = ["video"]')
        config = load_transcode_config(write(tmp_path, text))
        assert "preservation-master" in [p.name for p in config.for_media_kind("video")]
        assert "preservation-master" not in [p.name for p in config.for_media_kind("audio")]

    def test_every_mistake_is_named_with_file_and_profile(self, tmp_path: Path) -> None:
        """A broken file is refused with every mistake, each naming its profile."""
        path = write(
            tmp_path,
            """
            [policy]
            preservation = ["film"]
            [[profile]]
            name = "a"
            version = 0
            kind = "video-access"
            applies_to = ["video"]
            crf = "high"
            [[profile]]
            name = "b"
            version = 1
            kind = "hologram"
            applies_to = ["video"]
            [[profile]]
            name = "c"
            version = 1
            kind = "poster"
            applies_to = ["video"]
            colour = "red"
            [[profile]]
            name = "c"
            version = 1
            kind = "poster"
            applies_to = ["video"]
            """,
        )
        with pytest.raises(ProfileError) as caught:
            load_profiles(path)
        error = caught.value
        assert error.path == str(path) and str(path) in str(error)
        text = " | ".join(error.details)
        assert 'profile "a": version must be a whole number' in text
        assert 'profile "a": crf must be a number' in text
        assert "profile \"b\": kind 'hologram' is unknown" in text
        assert "profile \"c\": unknown parameter 'colour'" in text
        assert 'profile "c": the name is used twice' in text
        assert "[policy]: preservation must list media kinds" in text

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A file that is not TOML, or not there, is refused naming the file."""
        with pytest.raises(ProfileError, match="is not valid TOML"):
            load_profiles(write(tmp_path, "[[profile]\n"))
        with pytest.raises(ProfileError, match="cannot be read"):
            load_profiles(tmp_path / "missing.toml")


PROFILES_TEXT = Path(__file__).resolve().parent.parent.joinpath("config", "transcode_profiles.toml").read_text()


# -------------------------------------------------------------------------------------- commands
CAMERA = MediaInfo(
    "mov,mp4,m4a,3gp,3g2,mj2",
    10.0,
    (
        StreamInfo(0, "video", "h264", 1920, 1080, 30.0),
        StreamInfo(1, "audio", "aac", sample_rate=48000, channels=2),
        StreamInfo(2, "data", "bin_data"),
        StreamInfo(3, "audio", "pcm_s16le", sample_rate=16000, channels=1),
    ),
)
RECORDER = MediaInfo("wav", 5.0, (StreamInfo(0, "audio", "pcm_s24le", sample_rate=48000, channels=4),))


def pairs(argv: list[str]) -> list[tuple[str, str]]:
    return list(pairwise(argv))


class TestBuildCommand:
    def test_access_copy_keeps_every_audio_track(self) -> None:
        """Each audio track of the original is mapped into the access copy, data streams are not."""
        argv = build_command(PROFILES["video-access"], CAMERA, Path("in"), Path("out.mp4"))
        maps = [value for flag, value in pairs(argv) if flag == "-map"]
        assert maps[1:] == ["0:a:0", "0:a:1"]
        assert ("-fps_mode", "passthrough") in pairs(argv)
        assert ("-movflags", "+faststart") in pairs(argv)
        assert ("-c:v", "libx264") in pairs(argv) and ("-c:a", "aac") in pairs(argv)
        assert ("-crf", "23") in pairs(argv) and ("-preset", "veryfast") in pairs(argv)
        assert "format=yuv420p" in " ".join(argv)
        assert argv[0] == "ffmpeg" and argv[-1] == "file:out.mp4"

    def test_same_inputs_same_command(self) -> None:
        """Building twice gives the same argument list, so a derivative can be remade exactly."""
        for profile in PROFILES.values():
            media = RECORDER if profile.kind in ("audio-access", "waveform") else CAMERA
            first = build_command(profile, media, Path("in"), Path("out"), font=Path("font.ttf"))
            assert first == build_command(profile, media, Path("in"), Path("out"), font=Path("font.ttf"))

    def test_master_is_ffv1_level_3_with_exact_audio(self) -> None:
        """The master is FFV1 v3, all key frames with slice CRCs; float audio as float PCM, integer as FLAC."""
        argv = build_command(PROFILES["preservation-master"], CAMERA, Path("in"), Path("out.mkv"))
        flags = pairs(argv)
        for pair in [("-c:v", "ffv1"), ("-level", "3"), ("-g", "1"), ("-slicecrc", "1"), ("-f", "matroska")]:
            assert pair in flags
        assert [value for flag, value in flags if flag == "-map"] == ["0:0", "0:1", "0:3"]
        assert ("-c:a:0", "pcm_f32le") in flags  # AAC decodes to float samples
        assert ("-c:a:1", "flac") in flags  # 16-bit PCM

    def test_audio_copy_keeps_all_channels(self) -> None:
        """The audio copy neither downmixes nor drops tracks."""
        argv = build_command(PROFILES["audio-access"], RECORDER, Path("in.wav"), Path("out.m4a"))
        assert "-ac" not in argv and ("-map", "0:a:0") in pairs(argv)

    def test_nothing_to_use(self) -> None:
        """A profile given an original without the streams it needs is refused, naming the profile."""
        with pytest.raises(TranscodeError, match="video-access: the original has no video"):
            build_command(PROFILES["video-access"], RECORDER, Path("in"), Path("out"))
        mp3 = fast(PROFILES["audio-access"], format="mp3")
        with pytest.raises(TranscodeError, match="2 audio tracks and MP3 holds one"):
            build_command(mp3, CAMERA, Path("in"), Path("out"))


# ------------------------------------------------------------------------------------ derivatives
def access(samples: Samples, name: str, tmp_path: Path) -> tuple[MediaInfo, MediaInfo]:
    source = samples[name]
    before = digest(source)
    media = probe(source)
    made = make_derivative(fast(PROFILES["video-access"]), media, source, tmp_path / "access.mp4", timeout=TIMEOUT)
    assert made.ok, made.verification.reason
    assert made.path == tmp_path / "access.mp4" and made.profile == "video-access@2"
    assert digest(source) == before, "the original was written to"
    return media, probe(tmp_path / "access.mp4")


class TestVideoAccess:
    def test_two_tracks_and_size_kept(self, samples: Samples, tmp_path: Path) -> None:
        """A 1366x768 clip with two audio tracks keeps its size and both tracks."""
        media, copy = access(samples, "two-tracks.mp4", tmp_path)
        (picture,) = copy.of_kind("video")
        assert (picture.codec, picture.width, picture.height) == ("h264", 1366, 768)
        assert [a.codec for a in copy.of_kind("audio")] == ["aac", "aac"]
        assert copy.duration == pytest.approx(media.duration, abs=0.1)

    def test_uhd_fits_full_hd(self, samples: Samples, tmp_path: Path) -> None:
        """3840x2160 comes out 1920x1080."""
        _, copy = access(samples, "uhd.mp4", tmp_path)
        assert (copy.of_kind("video")[0].width, copy.of_kind("video")[0].height) == (1920, 1080)

    def test_portrait_keeps_its_resolution(self, samples: Samples, tmp_path: Path) -> None:
        """A 720x1280 phone recording is not shrunk to 1080 high, nor is anything enlarged."""
        _, copy = access(samples, "portrait.mp4", tmp_path)
        assert (copy.of_kind("video")[0].width, copy.of_kind("video")[0].height) == (720, 1280)

    def test_odd_size_becomes_even(self, samples: Samples, tmp_path: Path) -> None:
        """641x479 (which H.264 4:2:0 cannot hold) becomes 640x478, never larger."""
        _, copy = access(samples, "odd.mkv", tmp_path)
        assert (copy.of_kind("video")[0].width, copy.of_kind("video")[0].height) == (640, 478)

    def test_variable_frame_rate_keeps_its_timing(self, samples: Samples, tmp_path: Path) -> None:
        """Every frame of a variable-rate recording is shown at the time it was shown in the original."""
        original = frame_times(samples["vfr.mp4"])
        assert {round(b - a, 2) for a, b in pairwise(original)} == {0.2, 0.05}
        access(samples, "vfr.mp4", tmp_path)
        assert frame_times(tmp_path / "access.mp4") == original


class TestAudioAndPictures:
    def test_recording_gets_m4a_and_waveform(self, samples: Samples, tmp_path: Path) -> None:
        """A stereo WAV becomes a stereo AAC M4A of the same length and a waveform picture."""
        source = samples["voice.wav"]
        media = probe(source, "audio")
        copy = make_derivative(PROFILES["audio-access"], media, source, tmp_path / "voice.m4a", timeout=TIMEOUT)
        assert copy.ok, copy.verification.reason
        (track,) = probe(tmp_path / "voice.m4a", "audio").of_kind("audio")
        assert (track.codec, track.channels) == ("aac", 2)
        wave = make_derivative(PROFILES["waveform"], media, source, tmp_path / "voice.png", timeout=TIMEOUT)
        assert wave.ok, wave.verification.reason
        with Image.open(tmp_path / "voice.png") as picture:
            assert (picture.format, picture.size) == ("PNG", (1600, 240))

    def test_waveform_has_a_band_per_track(self, samples: Samples, tmp_path: Path) -> None:
        """Two audio tracks give two waveform bands, one above the other."""
        source = samples["two-tracks.mp4"]
        made = make_derivative(PROFILES["waveform"], probe(source), source, tmp_path / "w.png", timeout=TIMEOUT)
        assert made.ok, made.verification.reason
        with Image.open(tmp_path / "w.png") as picture:
            assert picture.size == (1600, 480)

    def test_photo_is_turned_upright(self, samples: Samples, tmp_path: Path) -> None:
        """A JPEG stored landscape with EXIF orientation 6 comes out portrait."""
        source = samples["rotated.jpg"]
        made = make_derivative(
            PROFILES["image-access"], probe(source, "image"), source, tmp_path / "photo.jpg", timeout=TIMEOUT
        )
        assert made.ok, made.verification.reason
        with Image.open(tmp_path / "photo.jpg") as picture:
            assert picture.size == (48, 64)

    def test_poster(self, samples: Samples, tmp_path: Path) -> None:
        """The poster is one JPEG no larger than the profile allows."""
        source = samples["uhd.mp4"]
        made = make_derivative(PROFILES["poster"], probe(source), source, tmp_path / "poster.jpg", timeout=TIMEOUT)
        assert made.ok, made.verification.reason
        with Image.open(tmp_path / "poster.jpg") as picture:
            assert (picture.format, picture.size) == ("JPEG", (640, 360))

    @pytest.mark.parametrize("labels", ["drawtext", "pillow"])
    def test_contact_sheet(self, samples: Samples, tmp_path: Path, labels: str) -> None:
        """A 4x4 sheet of labelled frames, with a system font or, on a machine without one, without."""
        font = find_font() if labels == "drawtext" else None
        if labels == "drawtext" and font is None:
            pytest.skip("no font on this machine")
        source = samples["vfr.mp4"]
        media = probe(source)
        made = make_derivative(
            PROFILES["contact-sheet"], media, source, tmp_path / "sheet.jpg", timeout=TIMEOUT, font=font
        )
        assert made.ok, made.verification.reason
        unlabelled = tmp_path / "plain.jpg"
        run_transcode(build_command(PROFILES["contact-sheet"], media, source, unlabelled), duration=None, timeout=60)
        with Image.open(tmp_path / "sheet.jpg") as sheet, Image.open(unlabelled) as plain:
            assert sheet.size == plain.size == (4 * 320 + 3 * 2, 4 * 240 + 3 * 2)
            # The label sits at the bottom left of each cell: the last cell's differs from the plain sheet.
            box = (3 * 322, 3 * 242 + 200, 3 * 322 + 80, 3 * 242 + 240)
            assert sheet.convert("L").crop(box).tobytes() != plain.convert("L").crop(box).tobytes()


def cell_shades(sheet: Path, columns: int, rows: int, cell_width: int) -> list[float]:
    """The mean brightness of the top half of every cell of a contact sheet (labels sit at the bottom)."""
    with Image.open(sheet) as picture:
        grey = picture.convert("L")
    cell_height = (grey.height - 2 * (rows - 1)) // rows
    means = []
    for number in range(columns * rows):
        row, column = divmod(number, columns)
        left, top = column * (cell_width + 2), row * (cell_height + 2)
        means.append(ImageStat.Stat(grey.crop((left, top, left + cell_width, top + cell_height // 2))).mean[0])
    return means


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Clips too short for a full sheet, every frame its own shade of grey."""
    folder = tmp_path_factory.mktemp("short")
    counted_frames_clip(folder / "one-frame.mp4", 0.04)
    counted_frames_clip(folder / "fifth.mp4", 0.2)
    counted_frames_clip(folder / "no-duration.mkv", 1, 10, pipe=True)
    counted_frames_clip(folder / "bare.h264", 1, 10, pipe=True)
    zero_duration(counted_frames_clip(folder / "zero-duration.mov", 0.2))
    return Samples(folder)


class TestShortClipSheets:
    @pytest.mark.parametrize("labels", ["drawtext", "pillow"])
    @pytest.mark.parametrize(
        ("name", "frames", "grid"),
        [
            ("one-frame.mp4", 1, (1, 1)),
            ("fifth.mp4", 5, (4, 2)),
            ("no-duration.mkv", 10, (4, 3)),
            ("bare.h264", 10, (4, 3)),
            ("zero-duration.mov", 5, (4, 2)),
        ],
    )
    def test_sheet_shows_every_frame_once(
        self, short_clips: Samples, tmp_path: Path, name: str, frames: int, grid: tuple[int, int], labels: str
    ) -> None:
        """A clip too short for sixteen frames gives a verified sheet of a cell per frame, the rest black."""
        font = find_font() if labels == "drawtext" else None
        if labels == "drawtext" and font is None:
            pytest.skip("no font on this machine")
        source = short_clips[name]
        profile = PROFILES["contact-sheet"]
        made = make_derivative(profile, probe(source), source, tmp_path / "sheet.jpg", timeout=TIMEOUT, font=font)
        assert made.ok, made.verification.reason
        assert made.verification.details["grid"] == list(grid)
        assert len(made.verification.details["cells"]) == frames
        columns, rows = grid
        with Image.open(tmp_path / "sheet.jpg") as sheet:
            assert sheet.size[0] == columns * 320 + 2 * (columns - 1)
        shades = cell_shades(tmp_path / "sheet.jpg", columns, rows, 320)
        shown, empty = shades[:frames], shades[frames:]
        assert all(value > 30 for value in shown) and all(value < 10 for value in empty), shades
        # Each cell shows its own frame: the cells' brightness ranks as the frames' shades do.
        wanted = [shade(number) for number in range(frames)]
        assert sorted(range(frames), key=shown.__getitem__) == sorted(range(frames), key=wanted.__getitem__)

    def test_sheet_of_another_layout_fails_verification(self, short_clips: Samples, tmp_path: Path) -> None:
        """A sheet whose grid is not the one the original's frames call for fails, saying how it differs."""
        source = short_clips["fifth.mp4"]
        made = make_derivative(PROFILES["contact-sheet"], probe(source), source, tmp_path / "s.jpg", timeout=TIMEOUT)
        assert made.ok, made.verification.reason
        one_frame = probe(short_clips["one-frame.mp4"])
        result = verify_derivative(PROFILES["contact-sheet"], one_frame, source, tmp_path / "s.jpg", timeout=TIMEOUT)
        assert not result.ok
        assert result.reason == "it is 1286 pixels wide, not 320 (1 column(s) of 320)"

    def test_clip_that_shows_nothing_is_a_clear_error(self, short_clips: Samples, tmp_path: Path) -> None:
        """A clip whose edit list shows no frame at all: ffmpeg writes nothing, and the error says so."""
        empty = empty_edit(counted_frames_clip(tmp_path / "empty.mov", 0.2))
        with pytest.raises(TranscodeError, match="ffmpeg wrote nothing"):
            make_derivative(PROFILES["contact-sheet"], probe(empty), empty, tmp_path / "sheet.jpg", timeout=TIMEOUT)
        assert sorted(path.name for path in tmp_path.iterdir()) == ["empty.mov"]


# ----------------------------------------------------------------------------------------- failures
class TestDamagedOriginals:
    def test_missing_index_raises_with_ffmpegs_words(self, samples: Samples, tmp_path: Path) -> None:
        """A recording cut off before its index fails with ffmpeg's explanation, and leaves no file."""
        media = probe(samples["two-tracks.mp4"])  # what the catalog knew about it
        with pytest.raises(TranscodeError) as caught:
            make_derivative(
                fast(PROFILES["video-access"]), media, samples["truncated.mp4"], tmp_path / "a.mp4", timeout=TIMEOUT
            )
        error = caught.value
        assert error.profile == "video-access" and error.returncode not in (0, None)
        assert any("moov atom not found" in line for line in error.stderr_tail)
        assert len(error.stderr_tail) <= 20
        assert list(tmp_path.iterdir()) == []

    def test_cut_recording_fails_verification(self, samples: Samples, tmp_path: Path) -> None:
        """A readable but cut-short recording gives a copy that fails verification, and says why."""
        source = samples["cut.mp4"]
        media = replace(probe(source), duration=3.0)
        made = make_derivative(fast(PROFILES["video-access"]), media, source, tmp_path / "a.mp4", timeout=TIMEOUT)
        assert not made.ok and made.path is None
        assert made.verification.reason is not None
        assert "where the original lasts 3.000 s" in made.verification.reason
        assert list(tmp_path.iterdir()) == []

    def test_unreadable_derivative_is_a_failed_verification(self, tmp_path: Path) -> None:
        """Verifying a file that is not media gives a reason, not an exception."""
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"\x00" * 4096)
        result = verify_derivative(PROFILES["video-access"], CAMERA, junk, junk, timeout=TIMEOUT)
        assert not result.ok and result.reason


# ------------------------------------------------------------------------------------------ master
class TestPreservationMaster:
    def test_master_decodes_like_the_original(self, samples: Samples, master: Path) -> None:
        """Every stream of the FFV1/Matroska master decodes to exactly what the original decodes to."""
        result = verify_lossless(samples["two-tracks.mp4"], master, timeout=TIMEOUT)
        assert result.ok and result.method == "stream-hash", result.reason
        assert [entry.split(":")[0] for entry in result.details["master"]] == ["v", "a", "a"]
        streams = probe(master).streams
        assert [(s.kind, s.codec) for s in streams] == [
            ("video", "ffv1"),
            ("audio", "pcm_f32le"),
            ("audio", "pcm_f32le"),
        ]

    def test_one_changed_frame_is_found(self, samples: Samples, master: Path, tmp_path: Path) -> None:
        """A master with a box drawn on one frame fails, naming the video stream."""
        altered = tmp_path / "altered.mkv"
        ffmpeg(
            "-i",
            str(master),
            "-map",
            "0",
            "-vf",
            "drawbox=x=0:y=0:w=8:h=8:color=red:t=fill:enable='eq(n,3)'",
            "-c:v",
            "ffv1",
            "-level",
            "3",
            "-c:a",
            "copy",
            str(altered),
        )
        result = verify_lossless(samples["two-tracks.mp4"], altered, timeout=TIMEOUT)
        assert not result.ok
        assert result.reason == "stream 0 (video) decodes differently from the original's"

    def test_changed_audio_is_found(self, samples: Samples, master: Path, tmp_path: Path) -> None:
        """A master whose second audio track was made quieter fails, naming that stream."""
        altered = tmp_path / "quieter.mkv"
        ffmpeg(
            "-i",
            str(master),
            "-map",
            "0",
            "-c",
            "copy",
            "-filter:a:1",
            "volume=0.99",
            "-c:a:1",
            "pcm_f32le",
            str(altered),
        )
        result = verify_lossless(samples["two-tracks.mp4"], altered, timeout=TIMEOUT)
        assert result.reason == "stream 2 (audio) decodes differently from the original's"

    def test_missing_stream_is_found(self, samples: Samples, master: Path, tmp_path: Path) -> None:
        """A master without one of the audio tracks fails, saying which streams each has."""
        partial = tmp_path / "partial.mkv"
        ffmpeg("-i", str(master), "-map", "0:v", "-map", "0:a:0", "-c", "copy", str(partial))
        result = verify_lossless(samples["two-tracks.mp4"], partial, timeout=TIMEOUT)
        assert result.reason == "the master has streams video, audio where the original has video, audio, audio"


# ------------------------------------------------------------------------------------------ runner
class TestRunner:
    def test_progress_rises_to_100(self, tmp_path: Path) -> None:
        """The callback hears ever larger percentages of the duration, ending at 100."""
        seen: list[float] = []
        argv = ["ffmpeg", "-hide_banner", "-stats_period", "0.05", *video("320x240", 20, 25), *H264]
        run = run_transcode([*argv, str(tmp_path / "p.mp4")], duration=20.0, timeout=TIMEOUT, on_progress=seen.append)
        assert run.returncode == 0
        assert len(seen) >= 3 and seen[-1] == 100.0
        assert all(a < b for a, b in pairwise(seen))
        assert 0 <= seen[0] < 100

    def test_deadline_kills_ffmpeg(self) -> None:
        """A run past its deadline is stopped and reported, not waited for."""
        endless = ["ffmpeg", "-hide_banner", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-f", "null", "-"]
        started = time.monotonic()
        with pytest.raises(TranscodeTimeoutError) as caught:
            run_transcode(endless, duration=None, timeout=0.5, on_progress=None, profile="poster")
        assert time.monotonic() - started < 5
        assert caught.value.profile == "poster" and caught.value.timeout == 0.5
        assert "did not finish within 0.5 s" in str(caught.value)

    def test_failure_carries_the_last_lines(self, tmp_path: Path) -> None:
        """A failed run raises with ffmpeg's status and the last lines it wrote."""
        with pytest.raises(TranscodeError) as caught:
            run_transcode(
                ["ffmpeg", "-hide_banner", "-i", str(tmp_path / "none.mp4"), "out.mp4"], duration=1.0, timeout=TIMEOUT
            )
        assert caught.value.returncode == 1
        assert any("No such file or directory" in line for line in caught.value.stderr_tail)

    def test_missing_program(self) -> None:
        """A missing ffmpeg is a TranscodeError saying so."""
        with pytest.raises(TranscodeError, match="is not installed"):
            run_transcode(["no-such-ffmpeg", "-version"], duration=None, timeout=5)


class TestPictureTimes:
    def test_poster_frame(self) -> None:
        """The poster is taken at a tenth of the duration, or from the first frame of a short clip."""
        argv = build_command(PROFILES["poster"], CAMERA, Path("in"), Path("out.jpg"))
        assert ("-ss", "1.0") in pairs(argv)
        short = replace(CAMERA, duration=1.5)
        assert "-ss" not in build_command(PROFILES["poster"], short, Path("in"), Path("out.jpg"))

    def test_contact_sheet_frames_stay_inside_the_video(self) -> None:
        """Sheet frames run from the first to the last frame of the pictures (not audio), sought half a frame early."""
        media = replace(
            CAMERA, streams=(replace(CAMERA.streams[0], frame_rate=10.0, duration=8.0), *CAMERA.streams[1:])
        )
        layout = contact_sheet_layout(PROFILES["contact-sheet"], media)
        assert len(layout.times) == 16 and layout.times[0] == 0.0 and (layout.columns, layout.rows) == (4, 4)
        assert layout.times == tuple(sorted(layout.times)) and layout.times[-1] == pytest.approx(7.9)
        assert layout.seeks()[0] == 0.0 and layout.seeks()[-1] == pytest.approx(7.85)
        assert timestamp_label(3723.46) == "01:02:03.5"
        assert timestamp_label(0.04, decimals=3) == "00:00:00.040"


def video_media(
    duration: float | None, rate: float | None, frames: int | None = None, container: str = "mov"
) -> MediaInfo:
    return MediaInfo(
        container, duration, (StreamInfo(0, "video", "h264", 64, 48, rate, duration=duration, frames=frames),)
    )


class TestShortClipLayout:
    @pytest.mark.parametrize("duration", [0.04, 0.0, None, float("nan"), float("inf"), -1.0])
    def test_one_frame_or_unknown_length_gives_a_1x1_sheet(self, duration: float | None) -> None:
        """One frame, a duration of zero, none, or not a number: a 1x1 sheet of the first frame."""
        layout = contact_sheet_layout(PROFILES["contact-sheet"], video_media(duration, 25.0))
        assert (layout.columns, layout.rows, layout.frames, layout.seeks()) == (1, 1, (0,), (0.0,))

    def test_five_frames_fill_five_cells(self) -> None:
        """A fifth of a second at 25 fps: five cells, one per frame, labelled to the millisecond."""
        layout = contact_sheet_layout(PROFILES["contact-sheet"], video_media(0.2, 25.0))
        assert (layout.columns, layout.rows, layout.frames) == (4, 2, (0, 1, 2, 3, 4))
        assert layout.labels() == ("00:00:00.000", "00:00:00.040", "00:00:00.080", "00:00:00.120", "00:00:00.160")
        assert layout.seeks() == (0.0, 0.02, 0.06, 0.1, 0.14)

    def test_counted_frames_without_a_duration_are_picked_by_number(self) -> None:
        """Ten counted frames, no duration, no frame rate: ten cells picked and labelled by number."""
        layout = contact_sheet_layout(PROFILES["contact-sheet"], video_media(0.0, None, frames=10))
        assert (layout.columns, layout.rows, layout.seekable, len(layout.frames)) == (4, 3, False, 10)
        assert layout.labels()[:2] == ("frame 1", "frame 2")
        argv = build_command(PROFILES["contact-sheet"], video_media(0.0, None, frames=10), Path("in"), Path("o.jpg"))
        assert "-ss" not in argv and "select=eq(n\\,0)+" in " ".join(argv) and "+eq(n\\,9)" in " ".join(argv)

    def test_bare_stream_is_never_sought(self) -> None:
        """An H.264 stream without a container has no timestamps to seek by: frames are picked by number."""
        media = video_media(None, 25.0, frames=25, container="h264")
        assert "-ss" not in build_command(PROFILES["contact-sheet"], media, Path("in"), Path("o.jpg"))

    @settings(max_examples=200, deadline=None)
    @example(duration=1e308, rate=240.0, frames=None, columns=4, rows=4)  # duration x rate overflows
    @example(duration=10.0, rate=25.0, frames=10**7, columns=4, rows=4)  # a header claiming too many frames
    @example(duration=None, rate=1.1e-308, frames=2, columns=2, rows=1)  # a rate so low frame times overflow
    @given(
        duration=st.none() | st.floats(allow_nan=True, allow_infinity=True),
        rate=st.none() | st.floats(allow_nan=True, allow_infinity=True),
        frames=st.none() | st.integers(1, 10**7),
        columns=st.integers(1, 6),
        rows=st.integers(1, 6),
    )
    def test_any_clip_gets_distinct_cells_that_fit_the_grid(
        self, duration: float | None, rate: float | None, frames: int | None, columns: int, rows: int
    ) -> None:
        """Whatever a probe says, the sheet's frames, seeks and labels differ, fill a grid that fits, and build."""
        profile = fast(PROFILES["contact-sheet"], columns=columns, rows=rows)
        media = video_media(duration, rate, frames)
        layout = contact_sheet_layout(profile, media)
        count = len(layout.frames)
        assert 1 <= count <= columns * rows
        assert layout.columns * (layout.rows - 1) < count <= layout.columns * layout.rows
        assert layout.frames == tuple(sorted(set(layout.frames))) and layout.frames[0] == 0
        assert len(set(layout.seeks())) == len(set(layout.labels())) == count
        build_command(profile, media, Path("in"), Path("out.jpg"), font=Path("font.ttf"))
