"""A corpus of odd files, the kind docks deliver and cameras write when something goes wrong: clips of
one frame or of no duration in every container the pipeline takes, files with no video or audio at
all, cover art, impossible picture sizes, recordings cut short, random bytes under media names,
broken EXIF, misnamed pictures and names that are very long or not UTF-8.

Everything is made in a given folder with ffmpeg, Pillow and byte surgery on their output; nothing
is downloaded. :func:`make_corpus` makes the whole corpus and says which files are damaged;
the other functions make one kind of file each, for tests that need only that one.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, TiffImagePlugin

SIZE = "64x48"
# Containers whose one-frame clips are made, with the video codec each holds (DV and MXF take only
# broadcast codecs and, for DV, only broadcast sizes).
ONE_FRAME = {
    "mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "avi": ["-c:v", "mjpeg"],
    "mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "ts": ["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    "dv": ["-s", "720x576", "-c:v", "dvvideo", "-pix_fmt", "yuv420p"],
    "mxf": ["-c:v", "mpeg2video"],
}
# Frame N of a counted-frames clip has luma SHADE_BASE + (N * SHADE_STEP) % SHADE_CYCLE: the first 16
# frames all differ by 7 or more.
SHADE_BASE, SHADE_STEP, SHADE_CYCLE = 50, 37, 170
TRUNCATIONS = 10
LONG_NAME_CHARS = 83  # 83 Chinese characters are 249 bytes of UTF-8; with ".mp4", 253 of the 255 allowed
# Problems an item made from a damaged file must carry (at least one).
DAMAGE_CODES = frozenset(["damaged-media", "truncated-stream", "unreadable-metadata", "unsupported-type"])


@dataclass(frozen=True)
class OddFile:
    path: Path
    what: str  # what is odd about it, for assertion messages
    damaged: bool = False  # broken beyond reading: its item must carry one of DAMAGE_CODES


# ------------------------------------------------------------------------------------------ ffmpeg
def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, failing loudly."""
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True)


def picture(rate: int = 25, seconds: float | None = None, size: str = SIZE) -> list[str]:
    """A lavfi test picture input, endless unless ``seconds`` is given."""
    length = f":duration={seconds}" if seconds is not None else ""
    return ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}{length}"]


def tone(seconds: float = 1.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]


def one_frame_clip(path: Path, container: str | None = None) -> Path:
    """A clip of a single frame in the container its suffix names (``container`` when given)."""
    kind = container or path.suffix.lstrip(".").lower()
    ffmpeg(*picture(), "-frames:v", "1", *ONE_FRAME[kind], str(path))
    return path


def counted_frames_clip(path: Path, seconds: float, rate: int = 25, *, pipe: bool = False) -> Path:
    """A clip whose every frame has its own brightness (:func:`shade`), so frames can be told apart on a
    contact sheet.

    ``pipe=True`` writes Matroska or a bare H.264 stream through a pipe: the muxer cannot go back to
    write the duration, which ffprobe then gives as N/A.
    """
    shades = f"geq=lum='{SHADE_BASE}+mod(N*{SHADE_STEP}\\,{SHADE_CYCLE})':cb=128:cr=128,format=yuv420p"
    source = ["-f", "lavfi", "-i", f"color=black:size={SIZE}:rate={rate}:duration={seconds}", "-vf", shades]
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if not pipe:
        ffmpeg(*source, *codec, str(path))
        return path
    muxer = "h264" if path.suffix.lower() in (".h264", ".264") else "matroska"
    with path.open("wb") as out:
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *source, *codec, "-f", muxer, "pipe:1"],
            stdout=out,
            check=True,
        )
    return path


def shade(frame: int) -> int:
    """The luma of frame ``frame`` (from 0) of a :func:`counted_frames_clip`."""
    return SHADE_BASE + (frame * SHADE_STEP) % SHADE_CYCLE


def base_clip(path: Path) -> Path:
    """A whole one-second 64x48 H.264 + AAC clip, its index at the end as cameras write it."""
    ffmpeg(*picture(10, 1), *tone(1), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", str(path))  # fmt: skip
    return path


# ----------------------------------------------------------------------------------- byte surgery
_CONTAINERS = frozenset([b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta"])


def boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """Every ISO BMFF box as (type, offset of its payload, end), containers walked into; the
    sample entries inside ``stsd`` are listed too."""
    end = len(data) if end is None else end
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            return
        payload = position + header
        yield kind, payload, position + size
        if kind in _CONTAINERS:
            yield from boxes(data, payload, position + size)
        elif kind == b"stsd":
            yield from boxes(data, payload + 8, position + size)
        position += size


def zero_duration(path: Path) -> Path:
    """Rewrite an MP4 or MOV in place so that its headers give every track and the movie a duration
    of zero and every sample lasts zero ticks. Its edit list is left alone: an edit of zero length
    would show nothing at all, a different oddity."""
    data = bytearray(path.read_bytes())
    for kind, payload, end in boxes(data):
        version = data[payload]
        if kind in (b"mvhd", b"mdhd"):  # version, flags, created, modified, time scale, duration
            _zero(data, payload + (24 if version == 1 else 16), 8 if version == 1 else 4)
        elif kind == b"tkhd":  # version, flags, created, modified, track, reserved, duration
            _zero(data, payload + (28 if version == 1 else 20), 8 if version == 1 else 4)
        elif kind == b"stts":  # entries of (sample count, sample delta)
            (count,) = struct.unpack(">I", data[payload + 4 : payload + 8])
            for entry in range(min(count, (end - payload - 8) // 8)):
                _zero(data, payload + 8 + entry * 8 + 4, 4)
    path.write_bytes(bytes(data))
    return path


def empty_edit(path: Path) -> Path:
    """Rewrite an MP4 or MOV's edit lists in place to show nothing: every edit lasts zero ticks."""
    data = bytearray(path.read_bytes())
    for kind, payload, end in boxes(data):
        if kind == b"elst":  # version, flags, entry count, then edits of (duration, media time, rate)
            version = data[payload]
            (count,) = struct.unpack(">I", data[payload + 4 : payload + 8])
            width = 20 if version == 1 else 12
            for entry in range(min(count, (end - payload - 8) // width)):
                _zero(data, payload + 8 + entry * width, 8 if version == 1 else 4)
    path.write_bytes(bytes(data))
    return path


def zero_mkv_duration(path: Path) -> Path:
    """Rewrite a Matroska file in place so that its segment duration and its tracks' DURATION tags
    are zero."""
    data = bytearray(path.read_bytes())
    element = data.index(b"\x44\x89")  # Duration: ID, then a size byte saying 8 or 4 bytes of float
    _zero(data, element + 3, 8 if data[element + 2] == 0x88 else 4)
    path.write_bytes(re.sub(rb"\d{2}:\d{2}:\d{2}\.\d{9}", b"00:00:00.000000000", bytes(data)))
    return path


def claim_mp4_size(path: Path, width: int, height: int) -> Path:
    """Rewrite the picture size an MP4 states (track header and video sample entry) in place."""
    data = bytearray(path.read_bytes())
    for kind, payload, end in boxes(data):
        if kind == b"tkhd" and struct.unpack(">I", data[end - 8 : end - 4])[0]:  # a video track's header
            data[end - 8 : end] = struct.pack(">II", width << 16, height << 16)
        elif kind in (b"avc1", b"mp4v", b"hvc1", b"jpeg", b"mjpa"):
            data[payload + 24 : payload + 28] = struct.pack(">HH", width, height)
    path.write_bytes(bytes(data))
    return path


def raw_avi(path: Path) -> Path:
    """A one-frame uncompressed AVI: its decoder takes the picture size from the header alone."""
    ffmpeg(*picture(), "-frames:v", "1", "-c:v", "rawvideo", "-pix_fmt", "bgr24", str(path))
    return path


def claim_avi_size(path: Path, width: int, height: int) -> Path:
    """Rewrite the picture size an AVI states (main header and video format) in place."""
    data = bytearray(path.read_bytes())
    main = data.index(b"avih") + 8  # dwWidth and dwHeight follow eight other fields
    data[main + 32 : main + 40] = struct.pack("<II", width, height)
    video = data.index(b"strf") + 8  # BITMAPINFOHEADER: size, width, height
    data[video + 4 : video + 12] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


def zero_avi_length(path: Path) -> Path:
    """Rewrite an AVI's frame counts (main header and stream header) to zero, in place."""
    data = bytearray(path.read_bytes())
    _zero(data, data.index(b"avih") + 8 + 16, 4)  # dwTotalFrames
    _zero(data, data.index(b"strh") + 8 + 32, 4)  # dwLength
    path.write_bytes(bytes(data))
    return path


def claim_jpeg_size(path: Path, width: int, height: int) -> Path:
    """Rewrite the size in a baseline JPEG's frame header (SOF0) in place."""
    data = bytearray(path.read_bytes())
    frame = data.index(b"\xff\xc0")  # marker, length, precision, height, width
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def _zero(data: bytearray, offset: int, width: int) -> None:
    data[offset : offset + width] = bytes(width)


# -------------------------------------------------------------------------------------------- EXIF
def gps_photo(
    path: Path,
    latitude: tuple[object, ...],
    longitude: tuple[object, ...],
    *,
    references: str = "NE",
    time: tuple[object, ...] | None = None,
) -> Path:
    """A 64x48 JPEG whose EXIF gives a GPS position (and, with ``time``, the GPS time on 2025-03-01)
    exactly as written: each part a number or a :class:`~PIL.TiffImagePlugin.IFDRational`, one with
    denominator 0 included."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Hikvision"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = references[0]
    gps[ExifTags.GPS.GPSLatitude] = latitude
    gps[ExifTags.GPS.GPSLongitudeRef] = references[1]
    gps[ExifTags.GPS.GPSLongitude] = longitude
    if time is not None:
        gps[ExifTags.GPS.GPSDateStamp] = "2025:03:01"
        gps[ExifTags.GPS.GPSTimeStamp] = time
    Image.new("RGB", (64, 48), "red").save(path, exif=exif)
    return path


def rational(numerator: int, denominator: int) -> TiffImagePlugin.IFDRational:
    """An EXIF rational written exactly as given, denominator 0 included."""
    return TiffImagePlugin.IFDRational(numerator, denominator)


# ------------------------------------------------------------------------------------------- names
def long_name(suffix: str = ".mp4") -> str:
    """A name of 253 bytes of UTF-8, mostly Chinese: just under the 255 most file systems allow."""
    text = ("执法记录仪现场录像" * 10)[:LONG_NAME_CHARS]
    return text + suffix


def gbk_name(folder: Path, name: str = "现场录像.mp4") -> Path:
    """A path in ``folder`` whose name is GBK bytes, as Chinese Windows docks write them (not UTF-8)."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name.encode("gbk"))))


def make_fifo(path: Path) -> Path:
    """A named pipe: a reader waits for ever for bytes that never come."""
    os.mkfifo(path)
    return path


def make_symlink(path: Path, target: Path) -> Path:
    """A symbolic link at ``path`` to ``target``."""
    path.symlink_to(target)
    return path


# ------------------------------------------------------------------------------------------ corpus
def make_corpus(folder: Path, *, seed: int = 10) -> list[OddFile]:
    """Make every odd file in ``folder`` (created when missing); the same seed gives the same bytes.

    Returns each file with what is odd about it and whether it is damaged; clips that are merely
    unusual (one frame, no duration, no video) are not damaged.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / ".making"  # hidden: intake ignores it
    scratch.mkdir(exist_ok=True)
    rng = random.Random(seed)
    corpus: list[OddFile] = []

    def add(path: Path, what: str, damaged: bool = False) -> None:
        corpus.append(OddFile(path, what, damaged))

    for container in ONE_FRAME:
        add(one_frame_clip(folder / f"one-frame.{container}"), f"a single-frame clip in {container.upper()}")
    for container in ("mp4", "mov"):
        clip = zero_duration(one_frame_clip(folder / f"zero-duration.{container}"))
        add(clip, f"a one-frame {container.upper()} clip whose headers give a duration of zero")
    add(zero_avi_length(one_frame_clip(folder / "zero-length.avi")), "an AVI whose headers count no frames")
    clip = zero_duration(counted_frames_clip(folder / "zero-duration-5-frames.mov", 0.2))
    add(clip, "a MOV of five frames, all at time zero")
    add(empty_edit(counted_frames_clip(folder / "empty-edit.mov", 0.2)), "a MOV whose edit list shows nothing")
    add(counted_frames_clip(folder / "no-duration.mkv", 1, 10, pipe=True), "a Matroska clip without a duration")
    clip = zero_mkv_duration(counted_frames_clip(folder / "zero-duration.mkv", 0.2))
    add(clip, "a Matroska clip of five frames whose duration reads zero")
    ffmpeg(*picture(), "-frames:v", "0", *ONE_FRAME["mkv"], str(folder / "no-frames.mkv"))
    add(folder / "no-frames.mkv", "a Matroska file ffmpeg wrote without a single frame", damaged=True)
    dv = (folder / "one-frame.dv").read_bytes()
    (folder / "half-a-frame.dv").write_bytes(dv[: len(dv) // 2])
    add(folder / "half-a-frame.dv", "a DV file cut in the middle of its only frame", damaged=True)
    add(counted_frames_clip(folder / "bare-stream.h264", 1, 10, pipe=True), "an H.264 stream without a container")
    add(counted_frames_clip(folder / "fifth-of-a-second.mp4", 0.2), "a clip of five frames")

    ffmpeg(*tone(0.5), "-c:a", "aac", str(folder / "audio-only.mp4"))
    add(folder / "audio-only.mp4", "an MP4 named as video that holds only sound")
    subtitles = scratch / "captions.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:01,000\nOfficer 012345\n", encoding="utf-8")
    ffmpeg("-i", str(subtitles), "-c:s", "srt", str(folder / "subtitle-only.mkv"))
    add(folder / "subtitle-only.mkv", "a Matroska file holding only a subtitle")
    note = scratch / "note.txt"
    note.write_text("statement\n", encoding="utf-8")
    ffmpeg("-i", str(subtitles), "-attach", str(note), "-metadata:s:t", "mimetype=text/plain",
           str(folder / "subtitle-and-attachment.mkv"))  # fmt: skip
    add(folder / "subtitle-and-attachment.mkv", "a Matroska file holding a subtitle and an attached file")
    timecoded = scratch / "timecoded.mov"
    ffmpeg(*picture(), "-frames:v", "1", *ONE_FRAME["mov"], "-timecode", "10:00:00:00", str(timecoded))
    ffmpeg("-i", str(timecoded), "-map", "0:d", "-c", "copy", str(folder / "timecode-only.mov"))
    add(folder / "timecode-only.mov", "a MOV holding only a time-code track")

    cover = scratch / "cover.png"
    ffmpeg(*picture(), "-frames:v", "1", str(cover))
    for suffix, codec in (("mp3", "libmp3lame"), ("m4a", "aac")):
        ffmpeg(*tone(0.5), "-i", str(cover), "-map", "0", "-map", "1", "-c:a", codec, "-c:v", "mjpeg",
               "-disposition:v", "attached_pic", str(folder / f"cover-art.{suffix}"))  # fmt: skip
        add(folder / f"cover-art.{suffix}", f"an {suffix.upper()} recording with cover art")

    for width, height in ((0, 0), (16384, 16384)):
        claimed = f"{width}x{height}"
        add(claim_avi_size(raw_avi(folder / f"claims-{claimed}.avi"), width, height),
            f"an uncompressed AVI whose headers claim {claimed}", damaged=True)  # fmt: skip
        add(claim_mp4_size(base_clip(folder / f"claims-{claimed}.mp4"), width, height),
            f"an MP4 whose headers claim {claimed}")  # fmt: skip
        jpeg = folder / f"claims-{claimed}.jpg"
        Image.new("RGB", (64, 48), "blue").save(jpeg)
        add(claim_jpeg_size(jpeg, width, height), f"a JPEG whose frame header claims {claimed}", damaged=True)

    whole = base_clip(scratch / "whole.mp4").read_bytes()
    for number, offset in enumerate(sorted(rng.sample(range(1, len(whole)), TRUNCATIONS)), start=1):
        cut = folder / f"cut-{number:02d}.mp4"
        cut.write_bytes(whole[:offset])
        add(cut, f"an MP4 cut short after {offset} of its {len(whole)} bytes", damaged=True)

    for suffix in ("mp4", "jpg", "wav", "mts"):
        noise = folder / f"random.{suffix}"
        noise.write_bytes(rng.randbytes(4096))
        add(noise, f"random bytes named .{suffix}", damaged=True)

    gps_photo(folder / "gps-seconds-60.jpg", (43, 47, 60), (121, 28, 25.32))
    add(folder / "gps-seconds-60.jpg", "a photo whose EXIF GPS seconds read 60")
    gps_photo(folder / "exif-zero-denominator.jpg", (rational(31, 1), rational(13, 0), rational(49, 1)), (121, 28, 0))
    add(folder / "exif-zero-denominator.jpg", "a photo whose EXIF GPS latitude has a denominator of 0", damaged=True)
    Image.new("RGB", (64, 48), "green").save(folder / "picture.png")
    add(folder / "picture.png", "a PNG picture")
    Image.new("RGB", (64, 48), "yellow").save(folder / "not-really.heic", format="JPEG")
    add(folder / "not-really.heic", "a JPEG named .heic")

    named = base_clip(folder / long_name())
    add(named, f"a clip with a {len(os.fsencode(named.name))}-byte Chinese name")
    gbk = gbk_name(folder)
    # A trailing free box gives it bytes of its own: a plain copy would be a duplicate of the long-named clip.
    gbk.write_bytes(whole + struct.pack(">I4s", 12, b"free") + b"gbk!")
    add(gbk, "a clip whose name is GBK bytes, not UTF-8")

    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    return corpus
