"""Pictures without a program per picture: a photo's access image is made and checked in-process
(upright, scaled, decoded back), and a stream copy's poster and contact sheet come out of the one
decoding that verifies the copy. Tiny real media, made by ffmpeg."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat
from sqlmodel import select

import pipeline.transcode.derive as derive_module
import pipeline.transcode.verify as verify_module
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Derivative
from pipeline.metadata.facts import ExtractionContext, MediaInfo
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.runtime import derive_context
from pipeline.settings import Settings
from pipeline.stage.tools import ToolRun
from pipeline.transcode import find_font, load_profiles, make_derivative, verify_derivative
from pipeline.transcode.runner import TranscodeRun
from pipeline.transcode.stage import derive
from pipeline.transcode.still import check_access_image
from tests.conftest import ffmpeg
from tests.odd_media import counted_frames_clip, shade

PROFILES = load_profiles()
TIMEOUT = 60.0
ORIENTATION = 0x0112


def probe(path: Path, kind: str) -> MediaInfo:
    media = (
        FfprobeExtractor(check_integrity=False)
        .extract(path, ExtractionContext(original_name=path.name, media_kind=kind))
        .media
    )
    assert media is not None, f"{path.name} cannot be read"
    return media


def with_orientation(path: Path, orientation: int) -> Path:
    """Put an EXIF block with ``orientation`` right after the JPEG's start marker, as a camera does."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    block = exif.tobytes()  # starts with the "Exif\0\0" header
    data = path.read_bytes()
    assert data[:2] == b"\xff\xd8"
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block + data[2:])
    return path


def red_left_blue_right(path: Path, width: int, height: int) -> Path:
    """A JPEG stored ``width`` x ``height``: its left half red, its right half blue."""
    half = f"{width // 2}x{height}"
    ffmpeg(
        *("-f", "lavfi", "-i", f"color=red:size={half}:duration=1"),
        *("-f", "lavfi", "-i", f"color=blue:size={half}:duration=1"),
        *("-filter_complex", "[0][1]hstack", "-frames:v", "1", "-q:v", "2", str(path)),
    )
    return path


def colour(picture: Image.Image, box: tuple[int, int, int, int]) -> str:
    red, _, blue = ImageStat.Stat(picture.convert("RGB").crop(box)).mean
    return "red" if red > 150 > blue else "blue" if blue > 150 > red else "other"


def image_access(source: Path, dest: Path) -> derive_module.Derivative:
    return make_derivative(PROFILES["image-access"], probe(source, "image"), source, dest, timeout=TIMEOUT)


class TestPhotoAccessImage:
    def test_photo_turned_on_its_side_comes_out_upright(self, tmp_path: Path) -> None:
        """A photo stored landscape (red left, blue right) whose EXIF says "turn 90 degrees clockwise"
        gives a portrait access image, red at the top and blue at the bottom, with no orientation left
        in it for a viewer to apply a second time; made without starting ffmpeg."""
        source = with_orientation(red_left_blue_right(tmp_path / "sideways.jpg", 96, 64), 6)
        made = image_access(source, tmp_path / "access.jpg")
        assert made.ok, made.verification.reason
        assert made.tool.startswith("Pillow ")
        assert made.verification.details == {"size": [64, 96], "orientation": 6}
        with Image.open(tmp_path / "access.jpg") as picture:
            assert (picture.format, picture.size) == ("JPEG", (64, 96))
            assert picture.getexif().get(ORIENTATION) in (None, 1)
            assert colour(picture, (8, 8, 56, 40)) == "red"
            assert colour(picture, (8, 56, 56, 88)) == "blue"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["access.jpg", "sideways.jpg"]  # no partial left

    def test_large_photo_is_scaled_to_the_limit_keeping_its_shape(self, tmp_path: Path) -> None:
        source = tmp_path / "wide.jpg"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=3000x1000:duration=1", "-frames:v", "1", str(source))
        made = image_access(source, tmp_path / "access.jpg")
        assert made.ok, made.verification.reason
        assert made.tool.startswith("Pillow ")
        with Image.open(tmp_path / "access.jpg") as picture:
            assert picture.format == "JPEG"
            assert picture.width == 2048 and abs(picture.height - 2048 / 3) <= 1

    @pytest.mark.parametrize("qscale", [2, 3, 6, 10])
    def test_quality_is_the_profiles_qscale(self, tmp_path: Path, qscale: int) -> None:
        """The profile's quality is ffmpeg's JPEG qscale: Pillow's copy is quantized about as finely as
        ffmpeg's at that qscale (their quantization tables, read back, within a quarter)."""
        source = red_left_blue_right(tmp_path / "photo.jpg", 640, 480)
        profile = replace(PROFILES["image-access"], params={**PROFILES["image-access"].params, "quality": qscale})
        made = make_derivative(profile, probe(source, "image"), source, tmp_path / "access.jpg", timeout=TIMEOUT)
        assert made.ok and made.tool.startswith("Pillow "), made.verification.reason
        ffmpeg("-i", str(source), "-frames:v", "1", "-q:v", str(qscale), str(tmp_path / "by-ffmpeg.jpg"))
        with Image.open(tmp_path / "access.jpg") as ours, Image.open(tmp_path / "by-ffmpeg.jpg") as theirs:
            ratio = sum(ours.quantization[0]) / sum(theirs.quantization[0])
        assert 0.75 < ratio < 1.25, ratio

    def test_picture_pillow_does_not_take_is_made_by_ffmpeg(self, tmp_path: Path) -> None:
        """A 16-bit grey PNG (scientific and thermal cameras write them) is left to ffmpeg, as before."""
        source = tmp_path / "thermal.png"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1", "-frames:v", "1", "-pix_fmt", "gray16be",
               str(source))  # fmt: skip
        with Image.open(source) as opened:
            assert opened.mode.startswith("I")
        made = image_access(source, tmp_path / "access.jpg")
        assert made.ok, made.verification.reason
        assert made.tool.startswith("ffmpeg")
        with Image.open(tmp_path / "access.jpg") as picture:
            assert (picture.format, picture.size) == ("JPEG", (160, 120))

    def test_cut_off_access_image_fails_its_check(self, tmp_path: Path) -> None:
        """The check decodes the whole copy: one cut short is not taken for a picture."""
        whole = red_left_blue_right(tmp_path / "whole.jpg", 640, 480)
        size, problems = check_access_image(whole, (640, 480), 2048)
        assert (size, problems) == ((640, 480), [])
        cut = tmp_path / "cut.jpg"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        _, problems = check_access_image(cut, (640, 480), 2048)
        assert len(problems) == 1 and "does not decode cleanly" in problems[0]

    def test_access_image_of_the_wrong_shape_fails_its_check(self, tmp_path: Path) -> None:
        """A copy left lying down when the photo says it stands (orientation not applied) fails."""
        lying = red_left_blue_right(tmp_path / "lying.jpg", 96, 64)
        _, problems = check_access_image(lying, (64, 96), 2048)
        assert len(problems) == 1 and "not the original's upright 64x96 picture" in problems[0]


# ------------------------------------------------------------------------- pictures of stream copies
def shades_clip(path: Path) -> Path:
    """A 2 s H.264 clip in MP4 whose every frame has its own brightness: a browser plays it, so its
    access copy is a stream copy."""
    return counted_frames_clip(path, 2)


def pictures_wanted(folder: Path) -> list[tuple[Any, Path]]:
    return [(PROFILES["poster"], folder / "poster.jpg"), (PROFILES["contact-sheet"], folder / "sheet.jpg")]


class TestPicturesOfStreamCopies:
    def test_poster_and_sheet_come_from_the_copys_verification(self, tmp_path: Path) -> None:
        """The stream copy's verification also makes its poster and contact sheet, the very pictures
        each would be when made on its own from the original."""
        source = shades_clip(tmp_path / "shades.mp4")
        media = probe(source, "video")
        along = tmp_path / "along"
        along.mkdir()
        font = find_font()
        made = make_derivative(
            PROFILES["video-access"],
            media,
            source,
            along / "access.mp4",
            timeout=TIMEOUT,
            font=font,
            pictures=pictures_wanted(along),
        )
        assert made.ok and made.plan is not None and made.plan.how == "remux", made.verification.reason
        assert [(p.profile, p.ok, p.path) for p in made.pictures] == [
            ("poster@2", True, along / "poster.jpg"),
            ("contact-sheet@2", True, along / "sheet.jpg"),
        ]
        assert made.pictures[1].verification.details["grid"] == [4, 4]
        assert sorted(p.name for p in along.iterdir()) == ["access.mp4", "poster.jpg", "sheet.jpg"]
        for profile, dest in pictures_wanted(tmp_path):
            alone = make_derivative(profile, media, source, dest, timeout=TIMEOUT, font=font)
            assert alone.ok, alone.verification.reason
            assert (along / dest.name).read_bytes() == dest.read_bytes(), profile.name
        # The poster is the frame at a tenth of the clip: frame 5 of 50.
        with Image.open(along / "poster.jpg") as poster:
            mean = ImageStat.Stat(poster.convert("L")).mean[0]
        assert mean == pytest.approx((shade(5) - 16) * 255 / 219, abs=4)

    def test_damaged_clip_whose_copy_fails_gives_no_pictures(self, tmp_path: Path) -> None:
        """A clip with damaged pictures: its stream copy fails verification, so nothing decoded from
        that copy is kept; the copy is encoded and the pictures are left to be made on their own."""
        source = tmp_path / "damaged.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=1", "-c:v", "libx264",
               "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(source))  # fmt: skip
        data = bytearray(source.read_bytes())
        middle = data.index(b"mdat") + (len(data) - data.index(b"mdat")) // 2
        data[middle : middle + 64] = bytes(64)
        source.write_bytes(bytes(data))
        out = tmp_path / "out"
        out.mkdir()
        profile = replace(PROFILES["video-access"])
        made = make_derivative(
            profile, probe(source, "video"), source, out / "access.mp4", timeout=TIMEOUT, pictures=pictures_wanted(out)
        )
        assert made.plan is not None and made.plan.how == "re-encode"
        assert "a stream copy was tried" in made.plan.why and "does not decode cleanly" in made.plan.why
        assert made.pictures == ()
        assert sorted(p.name for p in out.iterdir()) == (["access.mp4"] if made.ok else [])

    def test_copy_with_other_packets_fails_in_the_same_run(self, tmp_path: Path) -> None:
        """The run that decodes a stream copy also reads the original's packets: a copy that decodes
        well but holds other pictures than the original fails, naming the stream."""
        source = shades_clip(tmp_path / "shades.mp4")
        other = tmp_path / "other.mp4"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=2", "-c:v", "libx264", "-preset",
               "ultrafast", "-pix_fmt", "yuv420p", str(other))  # fmt: skip
        media = probe(source, "video")
        checked = verify_derivative(PROFILES["video-access"], media, source, other, timeout=TIMEOUT, same_packets=True)
        assert not checked.ok
        assert checked.reason == "the packets of stream 0 (video) differ from the original's"
        assert checked.details["packets"]["same"] is False
        assert "decode_errors" not in checked.details
        assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4", "shades.mp4"]  # no hash file left


class TestDeriveStage:
    def test_a_playable_clip_is_decoded_once(
        self, cli: Any, settings: Settings, dock: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Deriving a playable clip decodes it once: the stream copy's verification, which also makes
        the poster and the contact sheet; both are stored, verified, under their profiles' versions."""
        original = shades_clip(dock / "REC_0003.mp4")
        (record,) = cli("ingest", str(original), "--no-derive", "--json").records
        item_id = str(record["item"])
        ctx = derive_context(settings, actor="tester")
        decodes: list[list[str]] = []
        encodes: list[TranscodeRun] = []
        real_tool, real_transcode = verify_module.run_tool, derive_module.run_transcode

        def tool(args: list[str], timeout: float, *rest: Any, **kwargs: Any) -> ToolRun:
            if "null" in args:
                decodes.append(args)
            return real_tool(args, timeout, *rest, **kwargs)

        def transcode(*args: Any, **kwargs: Any) -> TranscodeRun:
            encodes.append(real_transcode(*args, **kwargs))
            return encodes[-1]

        monkeypatch.setattr(verify_module, "run_tool", tool)
        monkeypatch.setattr(derive_module, "run_transcode", transcode)
        results = derive(ctx, [item_id])
        assert [(r.profile, r.status) for r in results] == [
            ("video-access@2", "verified"),
            ("poster@2", "verified"),
            ("contact-sheet@2", "verified"),
        ]
        assert len(decodes) == 1 and len(encodes) == 1  # the remux, then its one decoding
        with session_scope(ctx.engine) as session:
            rows = session.exec(select(Derivative).where(Derivative.item_id == item_id)).all()
            pictures = {row.profile: row for row in rows if row.profile != "video-access"}
            assert {name: row.verified for name, row in pictures.items()} == {"poster": True, "contact-sheet": True}
            assert all((row.tool or "").startswith("ffmpeg") for row in pictures.values())
        for row in pictures.values():
            assert row.sha256 is not None
            with Image.open(ctx.store.path(row.sha256)) as stored:
                assert stored.format == "JPEG"
        assert list(ctx.store.tmp_dir.iterdir()) == []

        again = derive(ctx, [item_id])
        assert [r.status for r in again] == ["skipped"] * 3
