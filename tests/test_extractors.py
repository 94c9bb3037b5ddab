"""Metadata extractors: capture time, place, device and officer read from tiny real media made by
ffmpeg and Pillow, and damaged or foreign files reported as problems, never as exceptions."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from pipeline.metadata import (
    DEFAULT_FILENAME_PATTERNS,
    ExifreadExtractor,
    ExiftoolExtractor,
    Extraction,
    ExtractionContext,
    FfprobeExtractor,
    FilenameExtractor,
    FilenamePatternError,
    extract_all,
    load_filename_profiles,
)
from pipeline.metadata.avprobe import AvReader
from pipeline.metadata.facts import FIELDS
from pipeline.metadata.geo import from_dms, parse_iso6709
from tests.conftest import Samples
from tests.odd_media import gps_photo, one_frame_clip, rational

HAS_EXIFTOOL = shutil.which("exiftool") is not None
BODYCAM = "DSJ0001_012345_20250930143015_0001_IMP.MP4"
PROFILES = load_filename_profiles(DEFAULT_FILENAME_PATTERNS)


# ------------------------------------------------------------------------------------------- media
def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


VIDEO = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1"]
TONE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1"]
H264_AAC = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]


def metadata(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("-metadata", f"{key}={value}")]


def photo(
    path: Path,
    *,
    lat: tuple[float, float, float, str] = (31.0, 13.0, 49.44, "N"),
    lon: tuple[float, float, float, str] = (121.0, 28.0, 25.32, "E"),
    alt: tuple[float, int] | None = (10.5, 0),
    offset: str | None = "+08:00",
) -> Path:
    """A JPEG with the EXIF a body camera writes: time, GPS, make, model and serial."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Hikvision"
    exif[ExifTags.Base.Model] = "DS-MH2111"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2025:03:01 08:30:00"
    if offset is not None:
        sub[ExifTags.Base.OffsetTimeOriginal] = offset
    sub[ExifTags.Base.BodySerialNumber] = "SN-778899"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSDateStamp] = "2025:03:01"
    gps[ExifTags.GPS.GPSTimeStamp] = (0.0, 30.0, 0.0)  # satellite time is UTC: 08:30 at +08:00
    gps[ExifTags.GPS.GPSLatitudeRef] = lat[3]
    gps[ExifTags.GPS.GPSLatitude] = lat[:3]
    gps[ExifTags.GPS.GPSLongitudeRef] = lon[3]
    gps[ExifTags.GPS.GPSLongitude] = lon[:3]
    if alt is not None:
        gps[ExifTags.GPS.GPSAltitudeRef] = bytes([alt[1]])
        gps[ExifTags.GPS.GPSAltitude] = alt[0]
    Image.new("RGB", (64, 48), "red").save(path, exif=exif)
    return path


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Samples:
    """Every sample file made once for the module."""
    folder = tmp_path_factory.mktemp("extractors")
    utc = {"creation_time": "2025-09-30T06:30:15Z"}
    keys = ["-movflags", "use_metadata_tags"]  # QuickTime metadata keys, as phones and many cameras write
    camera = {"location": "+31.2304+121.4737/", "make": "Hikvision", "model": "DS-MH2111"}
    ffmpeg(*VIDEO, *TONE, *H264_AAC, *metadata(utc | camera), *keys, str(folder / "keys.mp4"))
    ffmpeg(*VIDEO, *TONE, *H264_AAC, *metadata(utc | {"location": "+31.2304+121.4737/"}), str(folder / "header.mp4"))
    phone = {
        "com.apple.quicktime.location.ISO6709": "-33.8688+151.2093+058.500/",
        "com.apple.quicktime.location.name": "Circular Quay",
        "com.apple.quicktime.make": "Apple",
        "com.apple.quicktime.model": "iPhone 15",
    }
    ffmpeg(*VIDEO, *TONE, *H264_AAC, *metadata(utc | phone), *keys, str(folder / "apple.mov"))
    second_tone = ["-f", "lavfi", "-i", "sine=frequency=880:duration=1"]
    languages = ["-metadata:s:a:0", "language=chi", "-metadata:s:a:1", "language=eng"]
    tracks = ["-map", "0", "-map", "1", "-map", "2"]
    ffmpeg(*VIDEO, *TONE, *second_tone, *tracks, *H264_AAC, *languages, str(folder / "two-tracks.mp4"))
    ffmpeg(*VIDEO, *TONE, *H264_AAC, "-movflags", "+faststart", str(folder / "faststart.mp4"))
    bext = {
        "originator": "ZOOM F6",
        "originator_reference": "CNPSB00000F6A0421143015123456789",  # EBU R 99: serial 00000F6A0421
        "origination_date": "2025-09-30",
        "origination_time": "14:30:15",
        "description": "Interview room 3",
    }
    ffmpeg(*TONE, "-ar", "48000", "-write_bext", "1", *metadata(bext), str(folder / "interview.wav"))
    photo(folder / "photo.jpg")
    return Samples(folder)


def stored(path: Path, tmp_path: Path, data: bytes | None = None) -> Path:
    """The file as the store keeps it: named by its SHA-256, without an extension."""
    data = path.read_bytes() if data is None else data
    target = tmp_path / "store" / hashlib.sha256(data).hexdigest()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def context(name: str, timeout: float = 30.0) -> ExtractionContext:
    return ExtractionContext(original_name=name, filename_profiles=PROFILES, timeout=timeout)


def by_extractor(results: list[Extraction]) -> dict[str, Extraction]:
    return {result.extractor: result for result in results}


def probe(
    path: Path, kind: str, name: str, tmp_path: Path, data: bytes | None = None, engine: str = "pyav"
) -> Extraction:
    extractors = [FfprobeExtractor(engine=engine)]
    results = by_extractor(extract_all(stored(path, tmp_path, data), kind, context(name), extractors))
    return results["ffprobe"]


def sources(extraction: Extraction, field: str) -> dict[str, object]:
    return {fact.source: fact.value for fact in extraction.facts if fact.field == field}


# ------------------------------------------------------------------------------------------ ffprobe
class TestQuickTimeAndMp4:
    def test_mp4_keys_give_utc_time_place_and_camera(self, samples: Samples, tmp_path: Path) -> None:
        """An MP4 with metadata keys: the UTC start, the position and the camera, each with its tag."""
        result = probe(samples["keys.mp4"], "video", "clip.mp4", tmp_path)
        assert result.problems == ()
        assert sources(result, "captured_at") == {"ffprobe:format.tags.creation_time": "2025-09-30T06:30:15Z"}
        assert sources(result, "location") == {
            "ffprobe:format.tags.location": {"lat": 31.2304, "lon": 121.4737, "alt": None}
        }
        assert sources(result, "make") == {"ffprobe:format.tags.make": "Hikvision"}
        assert sources(result, "model") == {"ffprobe:format.tags.model": "DS-MH2111"}
        assert re.fullmatch(r"PyAV \d[\d.]* \(libavformat \d+\.\d+\.\d+\)", result.tool), result.tool
        by_program = probe(samples["keys.mp4"], "video", "clip.mp4", tmp_path, engine="ffprobe")
        assert by_program.tool.startswith("ffprobe ") and by_program.tool.split()[1][0].isdigit()

    def test_mp4_header_time_keeps_its_utc_marker(self, samples: Samples, tmp_path: Path) -> None:
        """The movie header's time (UTC by the standard) comes out as …Z, without ffprobe's microseconds."""
        result = probe(samples["header.mp4"], "video", "clip.mp4", tmp_path)
        assert result.values("captured_at") == ["2025-09-30T06:30:15Z"]
        assert result.values("location") == [{"lat": 31.2304, "lon": 121.4737, "alt": None}]

    def test_mov_apple_location_with_altitude_and_place_name(self, samples: Samples, tmp_path: Path) -> None:
        """A phone's MOV: southern-hemisphere ISO 6709 position with altitude, the place name, the phone."""
        result = probe(samples["apple.mov"], "video", "IMG_0042.MOV", tmp_path)
        assert result.problems == ()
        assert sources(result, "location") == {
            "ffprobe:format.tags.com.apple.quicktime.location.ISO6709": {"lat": -33.8688, "lon": 151.2093, "alt": 58.5}
        }
        assert result.values("captured_place") == ["Circular Quay"]
        assert (result.values("make"), result.values("model")) == (["Apple"], ["iPhone 15"])
        assert result.media is not None and result.media.container is not None
        assert "mov" in result.media.container

    def test_every_audio_track_is_listed(self, samples: Samples, tmp_path: Path) -> None:
        """A clip with two audio tracks (e.g. officer and bystander microphones): both are listed."""
        result = probe(samples["two-tracks.mp4"], "video", "clip.mp4", tmp_path)
        assert result.media is not None
        assert [stream.kind for stream in result.media.streams] == ["video", "audio", "audio"]
        video, first, second = result.media.streams
        assert (video.codec, video.width, video.height, video.frame_rate) == ("h264", 160, 120, 10.0)
        assert [(s.index, s.codec, s.sample_rate, s.channels) for s in (first, second)] == [
            (1, "aac", 44100, 1),
            (2, "aac", 44100, 1),
        ]
        assert (first.language, second.language) == ("chi", "eng")
        assert result.media.duration == pytest.approx(1.0, abs=0.1)


class TestBroadcastWav:
    def test_bext_gives_local_time_recorder_and_serial(self, samples: Samples, tmp_path: Path) -> None:
        """BWF: the origination date and time (no zone, so naive), the recorder, its serial from the
        EBU R 99 reference."""
        result = probe(samples["interview.wav"], "audio", "interview.wav", tmp_path)
        assert result.problems == ()
        assert sources(result, "captured_at") == {"bext:origination_date+origination_time": "2025-09-30T14:30:15"}
        assert sources(result, "make") == {"bext:originator": "ZOOM F6"}
        assert sources(result, "device_serial") == {"bext:originator_reference": "00000F6A0421"}
        assert result.media is not None
        assert result.media.container == "wav"
        assert [(s.kind, s.codec, s.sample_rate) for s in result.media.streams] == [("audio", "pcm_s16le", 48000)]

    def test_cut_short_wav_is_reported_with_its_facts(self, samples: Samples, tmp_path: Path) -> None:
        """A WAV whose header announces more sound than it holds: truncated-stream, times still read."""
        data = samples["interview.wav"].read_bytes()
        result = probe(samples["interview.wav"], "audio", "interview.wav", tmp_path, data[: len(data) // 2])
        assert [problem.code for problem in result.problems] == ["truncated-stream"]
        assert "interview.wav: the recording is cut short" in result.problems[0].message
        assert result.values("captured_at") == ["2025-09-30T14:30:15"]


# ----------------------------------------------------------------------------------------- exifread
class TestPhotoExif:
    def read(self, path: Path, tmp_path: Path, name: str = "IMG_0001.JPG") -> Extraction:
        return ExifreadExtractor().extract(stored(path, tmp_path), context(name))

    def test_time_with_offset_position_and_serial(self, samples: Samples, tmp_path: Path) -> None:
        """DateTimeOriginal with OffsetTimeOriginal, the GPS time in UTC, GPS position in signed degrees,
        camera and body serial."""
        result = self.read(samples["photo.jpg"], tmp_path)
        assert result.problems == ()
        assert sources(result, "captured_at") == {
            "exif:EXIF DateTimeOriginal+OffsetTimeOriginal": "2025-03-01T08:30:00+08:00",
            "exif:GPS GPSDate+GPSTimeStamp": "2025-03-01T00:30:00Z",
        }
        assert sources(result, "location") == {
            "exif:GPS GPSLatitude+GPSLongitude": {"lat": 31.2304, "lon": 121.4737, "alt": 10.5}
        }
        assert sources(result, "device_serial") == {"exif:EXIF BodySerialNumber": "SN-778899"}
        assert (result.values("make"), result.values("model")) == (["Hikvision"], ["DS-MH2111"])
        assert result.tool.startswith("exifread 3.")

    def test_south_west_and_below_sea_level_are_negative(self, tmp_path: Path) -> None:
        """S and W references and altitude reference 1 give negative numbers."""
        path = photo(tmp_path / "rio.jpg", lat=(22.0, 54.0, 24.48, "S"), lon=(43.0, 10.0, 22.44, "W"), alt=(3.0, 1))
        assert self.read(path, tmp_path).values("location") == [{"lat": -22.9068, "lon": -43.1729, "alt": -3.0}]

    def test_time_without_offset_stays_naive(self, tmp_path: Path) -> None:
        """No OffsetTimeOriginal: the time is given without a zone, for the site's zone to apply."""
        result = self.read(photo(tmp_path / "naive.jpg", offset=None), tmp_path)
        assert sources(result, "captured_at")["exif:EXIF DateTimeOriginal"] == "2025-03-01T08:30:00"

    def test_photo_without_exif_is_not_a_problem(self, media_dir: Path, tmp_path: Path) -> None:
        """A JPEG that simply has no EXIF gives no facts and no false alarm."""
        result = self.read(media_dir / "photo.jpg", tmp_path)
        assert (result.facts, result.problems) == ((), ())

    def test_corrupt_exif_is_a_problem_not_an_exception(self, samples: Samples, tmp_path: Path) -> None:
        """One flipped byte sends the first directory outside the block: unreadable-metadata, naming the file."""
        data = bytearray(samples["photo.jpg"].read_bytes())
        tiff = data.index(b"Exif\x00\x00") + 6
        data[tiff + 4] ^= 0x7F  # the offset of IFD0
        path = tmp_path / "bad.jpg"
        path.write_bytes(bytes(data))
        result = self.read(path, tmp_path, "DSJ0001_012345_20250930143015_0002.JPG")
        assert result.facts == ()
        assert [problem.code for problem in result.problems] == ["unreadable-metadata"]
        assert result.problems[0].message.startswith("DSJ0001_012345_20250930143015_0002.JPG: has an EXIF block")


# ---------------------------------------------------------------------------------------- filenames
class TestBodyCameraNames:
    def read(self, name: str) -> Extraction:
        return FilenameExtractor().extract(Path("unused"), context(name))

    def test_important_recording_name(self) -> None:
        """Serial, officer number (leading zero kept), start time, file number and the _IMP mark."""
        result = self.read(BODYCAM)
        assert {fact.field: fact.value for fact in result.facts} == {
            "device_serial": "DSJ0001",
            "officer_id": "012345",
            "captured_at": "2025-09-30T14:30:15",
            "sequence": 1,
            "important": True,
        }
        assert {fact.source for fact in result.facts} == {"filename:cn-bodycam"}
        assert result.problems == ()

    def test_ordinary_recording_is_not_important(self) -> None:
        """Without _IMP the recording is marked not important; the dock's folders in the name do not matter."""
        result = self.read("dock1/2025-09-30/DSJ0001_012345_20250930143015_0007.mp4")
        assert result.values("important") == [False]
        assert result.values("sequence") == [7]

    def test_other_names_give_nothing(self) -> None:
        """A name no profile knows gives no facts and no problem."""
        for name in ("IMG_0001.MOV", "DSJ0001_012345_2025093014301_0001.MP4", "notes.txt"):
            result = self.read(name)
            assert (result.facts, result.problems) == ((), ()), name

    def test_impossible_time_in_name_is_a_problem(self) -> None:
        """Month 13 in the name: the other parts are still read, the time is reported."""
        result = self.read("DSJ0001_012345_20251330143015_0001.MP4")
        assert result.values("captured_at") == []
        assert result.values("device_serial") == ["DSJ0001"]
        assert [problem.code for problem in result.problems] == ["unreadable-metadata"]
        assert "'20251330143015'" in result.problems[0].message

    def test_site_profile_with_zone_and_case_number(self, tmp_path: Path) -> None:
        """A site's own profile: an offset in the format is kept, a case-number group becomes a fact."""
        config = tmp_path / "patterns.toml"
        config.write_text(
            "[[profile]]\n"
            'name = "site"\nvendor = "Interview suite"\n'
            "pattern = '(?P<case_number>A\\d{4}-\\d+)_(?P<captured_at>\\d{8}T\\d{6}[+-]\\d{4})\\.wav'\n"
            'time_format = "%Y%m%dT%H%M%S%z"\n',
            encoding="utf-8",
        )
        extractor_context = ExtractionContext("A2025-117_20250930T143015+0800.wav", load_filename_profiles(config))
        result = FilenameExtractor().extract(Path("unused"), extractor_context)
        assert sources(result, "captured_at") == {"filename:site": "2025-09-30T14:30:15+08:00"}
        assert result.values("case_number") == ["A2025-117"]


class TestFilenameProfiles:
    def test_default_profiles_load(self) -> None:
        """The shipped file loads and holds the body-camera profile."""
        assert [profile.name for profile in PROFILES] == ["cn-bodycam"]
        assert PROFILES[0].time_format == "%Y%m%d%H%M%S"

    def test_every_mistake_is_named_with_file_and_profile(self, tmp_path: Path) -> None:
        """A broken regex, an unknown group and a time group without format: one error listing all three."""
        config = tmp_path / "patterns.toml"
        config.write_text(
            '[[profile]]\nname = "broken"\nvendor = "x"\npattern = \'(?P<device_serial>[A-Z\'\n'
            '[[profile]]\nname = "typo"\nvendor = "x"\npattern = \'(?P<officer>\\d+)\'\n'
            '[[profile]]\nname = "no-format"\nvendor = "x"\npattern = \'(?P<captured_at>\\d{14})\'\n',
            encoding="utf-8",
        )
        with pytest.raises(FilenamePatternError) as caught:
            load_filename_profiles(config)
        error = caught.value
        assert error.path == str(config)
        assert str(error).startswith(f"{config}: ")
        assert len(error.details) == 3
        assert error.details[0].startswith('profile "broken": pattern does not compile')
        assert error.details[1].startswith('profile "typo": unknown group name(s) officer')
        assert error.details[2] == 'profile "no-format": the captured_at group needs a time_format'

    def test_invalid_toml_is_named(self, tmp_path: Path) -> None:
        """A syntax error in the file is reported with the file's path."""
        config = tmp_path / "patterns.toml"
        config.write_text("[[profile]\n", encoding="utf-8")
        with pytest.raises(FilenamePatternError, match="is not valid TOML") as caught:
            load_filename_profiles(config)
        assert caught.value.path == str(config)


# ---------------------------------------------------------------------------------------- positions
class TestIso6709:
    @pytest.mark.parametrize(
        "text",
        ["+31.2304+121.4737/", "+3113.824+12128.422/", "+311349.44+1212825.32/", "+31.2304+121.4737CRSWGS_84/"],
    )
    def test_every_form_gives_the_same_point(self, text: str) -> None:
        """Degrees, degrees-minutes and degrees-minutes-seconds forms agree."""
        assert parse_iso6709(text) == {"lat": 31.2304, "lon": 121.4737, "alt": None}

    def test_no_fix_is_no_position(self) -> None:
        """0°, 0° is what cameras write before a satellite fix: no position."""
        assert parse_iso6709("+00.0000+000.0000/") is None

    @pytest.mark.parametrize(
        ("text", "lat", "lon"),
        [
            ("+434760+1212825.32/", 43.8, 121.4737),
            ("+4360.000+12128.422/", 44.0, 121.4737),
            ("-335207.68-0431060/", -33.8688, -43.1833333),
            ("+8959.99999+000.5/", 90.0, 0.5),
        ],
    )
    def test_rounded_60_is_carried(self, text: str, lat: float, lon: float) -> None:
        """Minutes or seconds of 60 (or a hair under, rounded up) carry into the unit above."""
        place = parse_iso6709(text)
        assert place is not None
        assert (place["lat"], place["lon"]) == (pytest.approx(lat, abs=1e-6), pytest.approx(lon, abs=1e-6))

    @pytest.mark.parametrize(
        "text",
        ["+434761+1212825/", "+4361+12128/", "+9030+00000/", "+31.2+121.4+inf/", "+31.2+121.4+" + "9" * 400, "+31"],
    )
    def test_out_of_range_is_refused(self, text: str) -> None:
        """Minutes or seconds past 60, latitude past 90, an endless altitude, text that is not a point: ValueError."""
        with pytest.raises(ValueError):
            parse_iso6709(text)


class TestRoundedPositions:
    """Devices round: 43.8° is written 43° 47' 60", and a carried 60 must not cost a photo its place."""

    def read(self, path: Path, tmp_path: Path) -> Extraction:
        results = by_extractor(extract_all(stored(path, tmp_path), "image", context(path.name)))
        return results["exifread"]

    def test_photo_with_gps_seconds_of_60_keeps_its_place(self, tmp_path: Path) -> None:
        """A JPEG whose EXIF GPS seconds read 60/1: the 60 is carried, 43° 47' 60" N is 43.8°."""
        path = gps_photo(tmp_path / "rounded.jpg", (43, 47, 60), (121, 28, 25.32))
        result = self.read(path, tmp_path)
        assert result.problems == ()
        assert result.values("location") == [{"lat": 43.8, "lon": 121.4737, "alt": None}]

    def test_minutes_of_60_and_fractional_minutes(self, tmp_path: Path) -> None:
        """Minutes of 60 carry into the degree; minutes with a fraction and no seconds are read as written."""
        path = gps_photo(tmp_path / "minutes.jpg", (43, 60, 0), (rational(121, 1), rational(28422, 1000), 0))
        assert self.read(path, tmp_path).values("location") == [{"lat": 44.0, "lon": 121.4737, "alt": None}]

    def test_gps_time_of_60_seconds_is_the_next_minute(self, tmp_path: Path) -> None:
        """A GPS time of 12:29:60 is 12:30:00 UTC."""
        path = gps_photo(tmp_path / "clock.jpg", (31, 13, 49.44), (121, 28, 25.32), time=(12, 29, 60))
        assert sources(self.read(path, tmp_path), "captured_at") == {
            "exif:GPS GPSDate+GPSTimeStamp": "2025-03-01T12:30:00Z"
        }

    def test_denominator_zero_is_a_problem_not_a_crash(self, tmp_path: Path) -> None:
        """A GPS rational of 13/0: unreadable-metadata naming the fraction; the camera is still read."""
        path = gps_photo(tmp_path / "zero.jpg", (rational(31, 1), rational(13, 0), rational(49, 1)), (121, 28, 0))
        results = extract_all(stored(path, tmp_path), "image", context("zero.jpg"))
        assert "extractor-failed" not in {problem.code for result in results for problem in result.problems}
        result = by_extractor(results)["exifread"]
        assert result.values("location") == []
        assert [problem.code for problem in result.problems] == ["unreadable-metadata"]
        assert "denominator 0 (13/0)" in result.problems[0].message
        assert result.values("make") == ["Hikvision"]

    def test_latitude_beyond_90_is_a_problem(self, tmp_path: Path) -> None:
        """90° 30' N is no place on earth: unreadable-metadata, no location."""
        result = self.read(gps_photo(tmp_path / "pole.jpg", (90, 30, 0), (121, 28, 0)), tmp_path)
        assert result.values("location") == []
        assert [problem.code for problem in result.problems] == ["unreadable-metadata"]
        assert "out of range" in result.problems[0].message

    @pytest.mark.parametrize(
        ("parts", "reference", "degrees"),
        [
            ((43, 47, 60), "N", 43.8),
            ((43, 60, 0), "N", 44.0),
            ((89, 59, 60), "N", 90.0),
            ((10, 59, 59.9999), "N", 10.9999999722),
            ((10, 59, 60.004), "S", -11.0000011111),
            ((31, 13.824, 0), "N", 31.2304),
            ((31.2304, 0, 0), "N", 31.2304),
            ((31.2304,), "S", -31.2304),
            ((-33, 52, 7.68), "S", -33.8688),
        ],
    )
    def test_rounding_forms_devices_write(self, parts: tuple[float, ...], reference: str, degrees: float) -> None:
        """Carried 60s, seconds just short of 60, fractional minutes or degrees: read as the sum they stand for."""
        assert from_dms(parts, reference, "S") == pytest.approx(degrees, abs=1e-9)

    @pytest.mark.parametrize(
        "parts",
        [
            (31, -1, 0),
            (31, 0, -0.5),
            (31, 0, 60.5),
            (31, 61, 0),
            (float("nan"), 0, 0),
            (31, float("inf"), 0),
            (31, 0, float("nan")),
            (),
            (31, 13, 49, 1),
        ],
    )
    def test_garbage_is_refused(self, parts: tuple[float, ...]) -> None:
        """Negative or overlong minutes and seconds, numbers that are not numbers, the wrong count: ValueError."""
        with pytest.raises(ValueError):
            from_dms(parts, "N", "S")


# ------------------------------------------------------------------------------------ damaged input
class TestDamagedInput:
    @pytest.mark.parametrize(("engine", "program"), [("pyav", "libavformat"), ("ffprobe", "ffprobe")])
    def test_mp4_cut_in_half_is_damaged_media(
        self, samples: Samples, tmp_path: Path, engine: str, program: str
    ) -> None:
        """Half an MP4 (its index was at the end): damaged-media saying why, no exception."""
        data = samples["header.mp4"].read_bytes()
        result = probe(samples["header.mp4"], "video", BODYCAM, tmp_path, data[: len(data) // 2], engine)
        assert result.media is None
        assert [problem.code for problem in result.problems] == ["damaged-media"]
        message = result.problems[0].message
        assert message.startswith(f"{BODYCAM}: {program} cannot read it as video")
        assert "moov atom not found" in message and "cut short" in message
        assert str(tmp_path) not in message  # the stored object's path means nothing to a person

    def test_faststart_mp4_cut_short_is_truncated_stream(self, samples: Samples, tmp_path: Path) -> None:
        """Index first, data cut off: ffprobe still reads it, the packet pass reports the missing end."""
        data = samples["faststart.mp4"].read_bytes()
        result = probe(samples["faststart.mp4"], "video", BODYCAM, tmp_path, data[: len(data) // 2])
        assert result.media is not None and len(result.media.streams) == 2
        assert [problem.code for problem in result.problems] == ["truncated-stream"]
        assert "partial file" in result.problems[0].message

    def test_dv_cut_inside_its_frame_is_truncated_stream(self, tmp_path: Path) -> None:
        """A DV file cut inside its frame (ffmpeg pads it and says nothing) is truncated-stream; whole, it is fine."""
        whole = one_frame_clip(tmp_path / "tape.dv").read_bytes()
        assert probe(tmp_path / "tape.dv", "video", "tape.dv", tmp_path).problems == ()
        result = probe(tmp_path / "tape.dv", "video", "tape.dv", tmp_path, whole[: len(whole) // 2])
        assert [problem.code for problem in result.problems] == ["truncated-stream"]
        assert "holds 0.50 DV frames of 144000 bytes" in result.problems[0].message

    def test_whole_file_has_no_problem(self, samples: Samples, tmp_path: Path) -> None:
        """The same file uncut passes the packet pass: no false alarm."""
        result = probe(samples["faststart.mp4"], "video", BODYCAM, tmp_path)
        assert result.problems == ()

    def test_text_file_is_not_media(self, tmp_path: Path) -> None:
        """A text file: unsupported-type when it looks like one, damaged-media when named as video."""
        notes = tmp_path / "notes.txt"
        notes.write_text("Officer 012345 statement, 2025-09-30\n" * 20, encoding="utf-8")
        as_text = probe(notes, "other", "notes.txt", tmp_path)
        assert [problem.code for problem in as_text.problems] == ["unsupported-type"]
        assert as_text.problems[0].message.startswith("notes.txt: not a media file")
        as_video = probe(notes, "video", "renamed.mp4", tmp_path)
        assert [problem.code for problem in as_video.problems] == ["damaged-media"]

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(damage=st.lists(st.tuples(st.integers(0, 319), st.integers(0, 255)), min_size=1, max_size=8))
    def test_any_damage_to_exif_is_reported_never_raised(
        self, samples: Samples, tmp_path: Path, damage: list[tuple[int, int]]
    ) -> None:
        """Whatever bytes of the EXIF block are overwritten, exifread's extractor returns a result."""
        data = bytearray(samples["photo.jpg"].read_bytes())
        start = data.index(b"Exif\x00\x00")
        for position, value in damage:
            data[start + position] = value
        path = tmp_path / "fuzzed.jpg"
        path.write_bytes(bytes(data))
        result = ExifreadExtractor().extract(path, context("fuzzed.jpg"))
        assert {fact.field for fact in result.facts} <= FIELDS
        assert all(problem.message.startswith("fuzzed.jpg: ") for problem in result.problems)

    @given(name=st.text(max_size=80))
    def test_any_name_is_read_without_error(self, name: str) -> None:
        """File names are whatever docks wrote: none of them breaks the name reader."""
        result = FilenameExtractor().extract(Path("unused"), context(name))
        assert {fact.source for fact in result.facts} <= {"filename:cn-bodycam"}

    def test_stuck_reader_is_stopped_at_the_timeout(self, tmp_path: Path) -> None:
        """A file that never delivers its bytes (a FIFO) ends as a timeout problem, not a hang."""
        fifo = tmp_path / "stuck"
        os.mkfifo(fifo)
        started = time.monotonic()
        result = FfprobeExtractor().extract(fifo, context(BODYCAM, timeout=1.0))
        assert time.monotonic() - started < 10
        assert [problem.code for problem in result.problems] == ["timeout"]
        assert "did not finish within 1 s" in result.problems[0].message

    def test_missing_programs_are_tool_missing(self, samples: Samples, tmp_path: Path) -> None:
        """Without ffprobe or exiftool installed: tool-missing problems that say what was not read."""
        path = stored(samples["photo.jpg"], tmp_path)
        no_ffprobe = FfprobeExtractor(ffprobe="ffprobe-not-installed", engine="ffprobe").extract(path, context("a.jpg"))
        no_exiftool = ExiftoolExtractor(exiftool="exiftool-not-installed").extract(path, context("a.jpg"))
        broken = AvReader(command=(str(tmp_path / "no-python-here"),))
        no_reader = FfprobeExtractor(reader=broken).extract(path, context("a.jpg"))
        problems = no_ffprobe.problems + no_exiftool.problems + no_reader.problems
        assert [p.code for p in problems] == ["tool-missing", "tool-missing", "tool-missing"]
        assert "libimage-exiftool-perl" in no_exiftool.problems[0].message
        assert no_reader.problems[0].message.startswith("a.jpg: PyAV: cannot be started")

    def test_broken_extractor_does_not_cost_the_others(self, tmp_path: Path) -> None:
        """An extractor that raises is reported as extractor-failed; the file name is still read."""

        class Broken:
            name = "broken"

            def accepts(self, media_kind: str, original_name: str) -> bool:
                return True

            def extract(self, path: Path, context: ExtractionContext) -> Extraction:
                raise RuntimeError("defect")

        results = by_extractor(extract_all(tmp_path, "video", context(BODYCAM), [Broken(), FilenameExtractor()]))
        assert [problem.code for problem in results["broken"].problems] == ["extractor-failed"]
        assert results["filename"].values("device_serial") == ["DSJ0001"]


# ----------------------------------------------------------------------------------------- exiftool
@pytest.mark.skipif(not HAS_EXIFTOOL, reason="exiftool is not installed (Debian: libimage-exiftool-perl)")
class TestExiftool:
    def test_xmp_time_position_serial_and_place(self, tmp_path: Path) -> None:
        """XMP that exifread does not read: creation time with offset, position, serial, place name."""
        xmp = (
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
            ' xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:aux="http://ns.adobe.com/exif/1.0/aux/"'
            ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
            ' xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"'
            ' xmp:CreateDate="2025-09-30T14:30:15+08:00" exif:GPSLatitude="31,13.824N"'
            ' exif:GPSLongitude="121,28.422E" aux:SerialNumber="CAM-42" Iptc4xmpCore:Location="People\'s Square"'
            ' photoshop:City="Shanghai" photoshop:Country="China"/></rdf:RDF></x:xmpmeta>'
        )
        path = tmp_path / "xmp.jpg"
        Image.new("RGB", (32, 24), "blue").save(path, xmp=xmp.encode())
        result = ExiftoolExtractor().extract(stored(path, tmp_path), context("xmp.jpg"))
        assert result.problems == ()
        assert sources(result, "captured_at") == {"exiftool:XMP-xmp:CreateDate": "2025-09-30T14:30:15+08:00"}
        assert sources(result, "location") == {
            "exiftool:XMP-exif:GPSLatitude+GPSLongitude": {"lat": 31.2304, "lon": 121.4737, "alt": None}
        }
        assert sources(result, "device_serial") == {"exiftool:XMP-aux:SerialNumber": "CAM-42"}
        assert result.values("captured_place") == ["People's Square, Shanghai, China"]
        assert result.tool.startswith("exiftool ")

    def test_leaves_what_exifread_reads_to_exifread(self, samples: Samples, tmp_path: Path) -> None:
        """A JPEG's EXIF is exifread's: exiftool adds no second copy of the same facts."""
        result = ExiftoolExtractor().extract(stored(samples["photo.jpg"], tmp_path), context("a.jpg"))
        assert (result.facts, result.problems) == ((), ())

    def test_corrupt_exif_is_reported(self, samples: Samples, tmp_path: Path) -> None:
        """A damaged EXIF directory is an exiftool warning turned into unreadable-metadata."""
        data = bytearray(samples["photo.jpg"].read_bytes())
        data[data.index(b"Exif\x00\x00") + 10] ^= 0x7F
        result = ExiftoolExtractor().extract(stored(samples["photo.jpg"], tmp_path, bytes(data)), context("a.jpg"))
        assert [problem.code for problem in result.problems] == ["unreadable-metadata"]
        assert result.problems[0].message.startswith("a.jpg: exiftool warns:")


# -------------------------------------------------------------------------------------- extract_all
class TestExtractAll:
    def test_extractors_chosen_by_kind(self, samples: Samples, tmp_path: Path) -> None:
        """Audio: ffprobe and the name; photos: also exifread; unknown files: ffprobe and the name.
        exiftool is left out where the others already found the capture time."""
        wav = extract_all(stored(samples["interview.wav"], tmp_path), "audio", context("interview.wav"))
        jpg = extract_all(stored(samples["photo.jpg"], tmp_path), "image", context("photo.jpg"))
        notes = tmp_path / "notes.txt"
        notes.write_text("statement\n", encoding="utf-8")
        other = extract_all(stored(notes, tmp_path), "other", context("notes.txt"))
        assert [result.extractor for result in wav] == ["ffprobe", "filename"]
        assert [result.extractor for result in jpg] == ["ffprobe", "exifread", "filename"]
        assert [result.extractor for result in other] == ["ffprobe", "filename"]
        photo_media = by_extractor(jpg)["ffprobe"].media
        assert photo_media is not None
        assert [(s.width, s.height, s.frame_rate) for s in photo_media.streams] == [(64, 48, None)]

    def test_exiftool_fills_in_where_the_others_fall_short(self, samples: Samples, tmp_path: Path) -> None:
        """A photo without EXIF, or a format ffprobe reads poorly (MTS), gets exiftool's view too."""
        bare = tmp_path / "bare.jpg"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=32x24", "-frames:v", "1", str(bare)],
            check=True,
        )
        photo = extract_all(stored(bare, tmp_path), "image", context("bare.jpg"))
        clip = extract_all(stored(samples["photo.jpg"], tmp_path), "video", context("00001.MTS"))
        assert "exiftool" in [result.extractor for result in photo]
        assert "exiftool" in [result.extractor for result in clip]

    def test_body_camera_clip_combines_tags_and_name(self, samples: Samples, tmp_path: Path) -> None:
        """The clip's UTC tag time and the name's local time are both on record, each with its source."""
        results = extract_all(stored(samples["keys.mp4"], tmp_path), "video", context(BODYCAM))
        facts = {(fact.source, fact.field): fact.value for result in results for fact in result.facts}
        assert facts[("ffprobe:format.tags.creation_time", "captured_at")] == "2025-09-30T06:30:15Z"
        assert facts[("filename:cn-bodycam", "captured_at")] == "2025-09-30T14:30:15"
        assert facts[("filename:cn-bodycam", "important")] is True
        assert all(result.ok for result in results)
