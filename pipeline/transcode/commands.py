"""ffmpeg command lines for each kind of derivative, built as pure functions of the profile, the
original's probe (:class:`~pipeline.metadata.facts.MediaInfo`) and the two paths.

Nothing here runs a program or reads a file, so every command can be checked in a unit test and the
same inputs always give the same argument list. Commands are put together with ffmpeg-python; sizes
are passed through filter expressions, never through its ``video_size`` handling, which 0.2.0 gets
wrong.

Choices that matter for evidence:

- **Every audio track is kept.** Body cameras and interview recorders write several tracks
  (officer microphone, room, second language); the access copy maps each one by number
  (``-map 0:a:0 -map 0:a:1 …``) from the probe, because ffmpeg on its own picks only one.
- **A copy that already plays is not encoded again.** An original whose streams a browser plays
  (:mod:`pipeline.transcode.playable` decides) is stream-copied into MP4 with its index in front
  (``-movflags +faststart``): the same video and audio packets, every audio track, in seconds
  rather than minutes. Anything else is encoded with x264 at the profile's preset (``veryfast`` by
  default: at the same CRF the picture is as good, the file somewhat larger, the time a third).
- **Timing is the source's.** ``-fps_mode passthrough`` hands every decoded frame to the encoder
  with its own timestamp: none is duplicated or dropped to reach a constant rate. Body cameras write
  variable frame rate when light is low or the card is slow, and the MP4 muxer would otherwise
  make the rate constant by duplicating and dropping frames, which changes what is shown when.
  The access copy therefore has the same frames at the same times as the original.
- **Never larger than the original.** Video is scaled down to fit 1920x1080 (1080x1920 for portrait
  video, so a phone recording keeps its resolution), keeping the aspect ratio and even dimensions
  (H.264 4:2:0 needs them); smaller video keeps its size. The limits are compared with the picture
  as shown, after ffmpeg has applied the rotation the file asks for.
- **Rotation.** ffmpeg applies the display rotation of video and, since 5.1, the EXIF orientation
  of JPEG stills (it exports it as a display matrix), so the stills it is given (those Pillow does
  not read: :mod:`pipeline.transcode.still` makes the others) come out upright too.
- **Pictures of a stream copy cost no decoding of their own.** Its poster and contact sheet are
  further outputs of the run that decodes the copy to verify it (:func:`picture_outputs`).
- **The preservation master keeps every video and audio stream**, in the original's order;
  subtitle and data streams (camera telemetry, time codes) stay in the original, which is kept
  anyway. It is lossless: FFV1 version 3 (``-level 3``), every frame a key frame
  (``-g 1``) with slice CRCs (``-slicecrc 1``) so damage is detected and confined to a slice;
  audio is FLAC when the original decodes to integer samples and 32- or 64-bit float PCM when it
  decodes to floating point (AAC, MP3, Opus…), because FLAC cannot hold float samples and
  converting them would not be lossless.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from pipeline.metadata.facts import MediaInfo, StreamInfo
from pipeline.transcode.errors import TranscodeError
from pipeline.transcode.profiles import PRESERVATION, Profile

FFMPEG = "ffmpeg"
GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-loglevel", "warning")

# Audio codecs whose decoders give integer samples: FLAC holds those exactly.
_INTEGER_AUDIO_PREFIXES = ("pcm_s", "pcm_u", "adpcm_")
_INTEGER_AUDIO = frozenset(["flac", "alac", "pcm_alaw", "pcm_mulaw", "tta", "gsm", "gsm_ms", "truehd", "mlp"])
_DOUBLE_AUDIO = frozenset(["pcm_f64le", "pcm_f64be"])
# Contact sheets: pixels between cells (the tile filter's padding), the frame rate assumed for a video
# that states none, the highest rate taken at its word (above it, a rate is a time base: MPEG-TS
# and Matroska report 90000 or 1000 for variable-rate video), and a bound on the frames counted.
SHEET_PADDING = 2
DEFAULT_RATE = 25.0
MAX_RATE = 240.0
MIN_RATE = 1 / 3600  # one frame an hour (time-lapse); a header claiming fewer is not believed
MAX_FRAMES = 10**9
_NEVER = 1e18  # seconds: a time no frame reaches, once every cell of a sheet is filled
# Demuxers of bare video streams (ffprobe's format names): their packets carry no timestamps, so
# ffmpeg cannot seek in them, and a contact sheet picks its frames by number instead.
RAW_VIDEO = frozenset(
    [
        *("h264", "hevc", "m4v", "mpegvideo", "mjpeg", "cavsvideo", "vc1"),
        *("rawvideo", "dirac", "avs2", "h261", "h263", "obu"),
    ]
)


@dataclass(frozen=True)
class ContactSheetLayout:
    """Which frames a contact sheet shows, row by row, one per cell: ``frames`` are their numbers
    (0 is the first frame). Cells past the last frame (when the frames do not fill the last row)
    stay empty.

    The clip is decoded once and each cell keeps its frame as it passes. ``seekable`` clips (those
    that state a duration) keep the first frame at or after each cell's time, as a seek to it would;
    the others (a duration of zero or none, a bare stream) have no timestamps to go by, and their
    frames are picked by number. ``rate`` is the frame rate the times are counted in;
    ``None`` when the clip states none and is not seekable, and its cells are labelled by number.
    """

    columns: int
    rows: int
    frames: tuple[int, ...]
    rate: float | None = DEFAULT_RATE
    seekable: bool = True

    @property
    def times(self) -> tuple[float, ...]:
        """Each cell's time in seconds from the start: frame ``k`` is at ``k / rate``."""
        rate = self.rate or DEFAULT_RATE
        return tuple(round(number / rate, 3) for number in self.frames)

    def seeks(self) -> tuple[float, ...]:
        """From when each cell takes its frame, in seconds from the first frame: half a frame before
        its frame, so the first frame at or after it is that cell's frame, rounding or not; the
        first cell takes the first frame."""
        rate = self.rate or DEFAULT_RATE
        return tuple(round((number - 0.5) / rate, 6) if number else 0.0 for number in self.frames)

    def select_expression(self) -> str:
        """The ``select`` filter expression that keeps one frame per cell in a single pass.

        A seekable clip keeps its first frame, then the first frame at or after the next cell's
        :meth:`seeks` time (``selected_n`` counts the cells filled so far), so every cell shows a
        frame of its own even where a variable-rate clip has fewer frames than its cells' times
        (a seek per cell showed such a frame twice). A clip without timestamps keeps each cell's
        frame by number.
        """
        if not self.seekable:
            return "+".join(f"eq(n,{number})" for number in self.frames)
        steps = [f"eq(selected_n,{cell})*{at:.6f}" for cell, at in enumerate(self.seeks()) if at]
        steps.append(f"gte(selected_n,{len(self.frames)})*{_NEVER:g}")
        return f"gte(t-start_t,{'+'.join(steps)})"

    def labels(self) -> tuple[str, ...]:
        """Each cell's label: its time to the tenth of a second, or to the millisecond when the
        frames are so close together that tenths would repeat; "frame N" (counted from 1) when
        the clip states no frame rate."""
        if self.rate is None:
            return tuple(f"frame {number + 1}" for number in self.frames)
        tenths = tuple(timestamp_label(at) for at in self.times)
        if len(set(tenths)) == len(tenths):
            return tenths
        return tuple(timestamp_label(at, decimals=3) for at in self.times)


def build_command(
    profile: Profile,
    media: MediaInfo,
    source: Path,
    dest: Path,
    *,
    font: Path | None = None,
    remux: bool = False,
    ffmpeg_path: str = FFMPEG,
) -> list[str]:
    """The ffmpeg argument list that makes ``dest`` from ``source`` with ``profile``.

    ``media`` is the probe of ``source``: it says which streams there are to map. ``font`` is the
    font file contact-sheet labels are drawn with; without one the sheet is made unlabelled and
    :func:`pipeline.transcode.sheet.label_contact_sheet` labels it afterwards. ``remux`` makes a
    video access copy by stream copy (see :mod:`pipeline.transcode.playable` for when it is right).
    Raises :class:`TranscodeError` when the original has nothing this profile can use.
    """
    builders = {
        "video-access": _video_access,
        "audio-access": _audio_access,
        "image-access": _image_access,
        "poster": _poster,
        "contact-sheet": _contact_sheet,
        "waveform": _waveform,
        PRESERVATION: _preservation,
    }
    builder = _video_remux if remux and profile.kind == "video-access" else builders[profile.kind]
    node = builder(profile, media, _input_name(source), _output_name(dest), font)
    compiled: list[str] = node.compile(cmd=ffmpeg_path)
    # Global options first, where ffmpeg documents them; -y because dest is the caller's to replace.
    return [ffmpeg_path, *GLOBAL_ARGS, "-y", *compiled[1:]]


def picture_outputs(
    pictures: Sequence[tuple[Profile, Path]], media: MediaInfo, source: Path, *, font: Path | None = None
) -> list[str]:
    """ffmpeg arguments (the filter graph and the outputs, to follow ``-i`` ``source``) that make each
    poster and contact sheet of ``pictures`` (profile, destination) from one decoding of ``source``'s
    first video stream, to be run together with other outputs of the same input: the decoding that
    verifies an access copy makes its pictures as well (:func:`pipeline.transcode.verify.decode_and_hash`).

    A poster is the first frame at or after its :func:`poster_time` counted from the first frame
    (which is what a seek to it shows); a contact sheet is made as :func:`build_command` makes it.
    ``media`` is the probe of the clip the pictures show. Raises :class:`TranscodeError` when a
    profile is not a poster or a contact sheet, or the clip has no video.
    """
    name = _input_name(source)
    src = ffmpeg.input(name)
    outputs = []
    for profile, dest in pictures:
        _first(media, "video", profile)
        if profile.kind == "poster":
            at = poster_time(profile, media)
            first = f"lt(selected_n,1)*gte(t-start_t,{at:.6f})" if at else "lt(selected_n,1)"
            picture = _poster_scaled(profile, src["v:0"].filter("select", first))
        elif profile.kind == "contact-sheet":
            picture = _sheet(profile, media, src["v:0"], font)
        else:
            raise TranscodeError(profile.name, None, reason=f"a {profile.kind} is not made from a decoding pass")
        outputs.append(_jpeg(picture, _output_name(dest), profile))
    compiled: list[str] = ffmpeg.merge_outputs(*outputs).compile(cmd=FFMPEG)
    if compiled[1:3] != ["-i", name]:  # ffmpeg-python puts the one input first
        raise TranscodeError(None, None, reason=f"unexpected picture command: {compiled[:3]}")
    return compiled[3:]


def contact_sheet_layout(profile: Profile, media: MediaInfo) -> ContactSheetLayout:
    """Which frames a contact sheet shows: up to ``columns`` x ``rows`` distinct frames, evenly spread
    from the first frame to the last.

    The video's own duration is used (the container's can include audio that outlasts the
    pictures), and its frame count (``StreamInfo.frames``) when it is known and no more than
    duration times rate.
    A clip too short to fill the sheet (one frame, a fifth of a second) shows each frame it has
    once: ``count`` frames make a sheet ``min(columns, count)`` wide and as many rows high as they
    need, so a single frame gives a 1x1 sheet. A clip that states no duration (or zero) shows its
    counted frames, or only its first frame when they were not counted (see
    :func:`pipeline.transcode.sheet.with_counted_frames`).
    """
    columns, rows = int(profile["columns"]), int(profile["rows"])
    video = _first(media, "video", profile)
    rate = positive_number(video.frame_rate, MAX_RATE)
    rate = rate if rate is not None and rate >= MIN_RATE else None
    duration = positive_number(video.duration) or positive_number(media.duration)
    seekable = duration is not None and media.container not in RAW_VIDEO
    if duration is not None and seekable:
        rate = rate or DEFAULT_RATE
        # Never more frames than the duration holds: a count from a damaged header would send the
        # seeks past the end.
        frames = min(video.frames or MAX_FRAMES, round(min(duration * rate, MAX_FRAMES)))
    else:
        frames = video.frames or 1
    frames = max(1, min(frames, MAX_FRAMES))
    count = min(columns * rows, frames)
    if count == 1:
        numbers: tuple[int, ...] = (0,)
    else:
        step = (frames - 1) / (count - 1)  # at least 1, so the rounded numbers are all different
        numbers = tuple(round(step * i) for i in range(count))
    columns = min(columns, count)
    return ContactSheetLayout(columns, -(-count // columns), numbers, rate, seekable)


def positive_number(value: float | None, limit: float = math.inf) -> float | None:
    """``value`` when it is a number above zero and no more than ``limit``, else ``None``."""
    if value is None or not math.isfinite(value) or not 0 < value <= limit:
        return None
    return value


def timestamp_label(seconds: float, decimals: int = 1) -> str:
    """``HH:MM:SS.s`` (with ``decimals`` digits after the point), as contact-sheet cells are labelled."""
    scale = 10**decimals
    parts = round(seconds * scale)
    hours, rest = divmod(parts, 3600 * scale)
    minutes, rest = divmod(rest, 60 * scale)
    whole, fraction = divmod(rest, scale)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}.{fraction:0{decimals}d}"


def poster_time(profile: Profile, media: MediaInfo) -> float:
    """Where the poster frame is taken: ``position`` of the video's duration (the container's when the
    video states none), or 0 for short clips and clips of unknown length."""
    videos = media.of_kind("video")
    duration = (videos[0].duration if videos else None) or media.duration or 0.0
    if not math.isfinite(duration) or duration < float(profile["short_clip"]):
        return 0.0
    return round(duration * float(profile["position"]), 3)


def preservation_audio_codec(stream: StreamInfo) -> str:
    """The master's codec for an audio stream: one that holds its decoded samples exactly."""
    codec = stream.codec or ""
    if codec in _INTEGER_AUDIO or codec.startswith(_INTEGER_AUDIO_PREFIXES):
        return "flac"
    if codec in _DOUBLE_AUDIO:
        return "pcm_f64le"
    return "pcm_f32le"


# ------------------------------------------------------------------------------------- builders
def _video_access(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    _first(media, "video", profile)
    src = ffmpeg.input(source)
    wide, tall = int(profile["max_width"]), int(profile["max_height"])
    long_side, short_side = max(wide, tall), min(wide, tall)
    # Landscape (or square) pictures fit long_side x short_side, portrait ones short_side x long_side.
    video = (
        src["v:0"]
        .filter(
            "scale",
            w=f"if(gte(iw,ih),min({long_side},iw),min({short_side},iw))",
            h=f"if(gte(iw,ih),min({short_side},ih),min({long_side},ih))",
            force_original_aspect_ratio="decrease",
            force_divisible_by=2,
        )
        .filter("setsar", "1")
        .filter("format", "yuv420p")
    )
    outputs = [video, *_audio_tracks(src, media)]
    options: dict[str, Any] = {
        "c:v": "libx264",
        "preset": profile["preset"],
        "crf": profile["crf"],
        "fps_mode": "passthrough",
        "movflags": "+faststart",
        "f": "mp4",
    }
    if media.of_kind("audio"):
        options |= {"c:a": "aac", "b:a": profile["audio_bitrate"]}
    return ffmpeg.output(*outputs, dest, **options)


def _video_remux(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    video = _first(media, "video", profile)
    src = ffmpeg.input(source)
    options: dict[str, Any] = {"c": "copy", "movflags": "+faststart", "f": "mp4"}
    if video.codec == "hevc":
        options["tag:v"] = "hvc1"  # the tag Safari requires; ffmpeg writes hev1 for some sources
    return ffmpeg.output(src["v:0"], *_audio_tracks(src, media), dest, **options)


def _audio_access(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    tracks = media.of_kind("audio")
    if not tracks:
        raise TranscodeError(profile.name, None, reason="the original has no audio to make an audio copy of")
    src = ffmpeg.input(source)
    if profile["format"] == "mp3":
        if len(tracks) > 1:
            raise TranscodeError(
                profile.name,
                None,
                reason=f"the original has {len(tracks)} audio tracks and MP3 holds one; use format m4a",
            )
        options = {"c:a": "libmp3lame", "b:a": profile["audio_bitrate"], "f": "mp3"}
    else:
        options = {"c:a": "aac", "b:a": profile["audio_bitrate"], "movflags": "+faststart", "f": "mp4"}
    return ffmpeg.output(*_audio_tracks(src, media), dest, **options)


def _image_access(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    _first(media, "video", profile)
    side = int(profile["max_dimension"])
    picture = ffmpeg.input(source)["v:0"].filter(
        "scale", w=f"min({side},iw)", h=f"min({side},ih)", force_original_aspect_ratio="decrease"
    )
    return _jpeg(picture, dest, profile)


def _poster(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    _first(media, "video", profile)
    at = poster_time(profile, media)
    src = ffmpeg.input(source, ss=at) if at else ffmpeg.input(source)
    return _jpeg(_poster_scaled(profile, src["v:0"]), dest, profile)


def _poster_scaled(profile: Profile, picture: Any) -> Any:
    side = int(profile["max_dimension"])
    return picture.filter("scale", w=f"min({side},iw)", h=f"min({side},ih)", force_original_aspect_ratio="decrease")


def _contact_sheet(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    return _jpeg(_sheet(profile, media, ffmpeg.input(source)["v:0"], font), dest, profile)


def _sheet(profile: Profile, media: MediaInfo, video: Any, font: Path | None) -> Any:
    layout = contact_sheet_layout(profile, media)
    # One input decoded once: the select filter keeps each cell's frame as it passes, and the tile
    # filter lays them out, ending the run at the last cell (nb_frames) rather than the clip's end.
    sheet = video.filter("select", layout.select_expression())
    sheet = sheet.filter("scale", profile["cell_width"], -2).filter("setsar", "1")
    if font is not None:
        for cell, label in enumerate(layout.labels()):
            sheet = sheet.filter(
                "drawtext",
                fontfile=str(font),
                text=label,
                expansion="none",
                fontsize=profile["font_size"],
                fontcolor="white",
                box=1,
                boxcolor="black@0.6",
                boxborderw=3,
                x=4,
                y="h-th-6",
                enable=f"eq(n,{cell})",  # the cell-th frame kept by select
            )
    return sheet.filter(
        "tile", f"{layout.columns}x{layout.rows}", padding=SHEET_PADDING, color="black", nb_frames=len(layout.frames)
    )


def _waveform(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    tracks = media.of_kind("audio")
    if not tracks:
        raise TranscodeError(profile.name, None, reason="the original has no audio to draw a waveform of")
    src = ffmpeg.input(source)
    size = f"{int(profile['width'])}x{int(profile['height'])}"
    pictures = [
        src[f"a:{number}"].filter("showwavespic", s=size, split_channels=1, colors=profile["color"])
        for number in range(len(tracks))
    ]
    # One band per audio track, top to bottom in track order.
    picture = ffmpeg.filter(pictures, "vstack", inputs=len(pictures)) if len(pictures) > 1 else pictures[0]
    return ffmpeg.output(picture, dest, **{"frames:v": 1, "update": 1, "f": "image2", "c:v": "png"})


def _preservation(profile: Profile, media: MediaInfo, source: str, dest: str, font: Path | None) -> Any:
    kept = [stream for stream in media.streams if stream.kind in ("video", "audio")]
    if not kept:
        raise TranscodeError(profile.name, None, reason="the original has no video or audio to preserve")
    src = ffmpeg.input(source)
    options: dict[str, Any] = {"f": "matroska", "map_metadata": 0}
    if any(stream.kind == "video" for stream in kept):
        options |= {
            "c:v": "ffv1",
            "level": 3,
            "g": 1,
            "slicecrc": 1,
            "slices": profile["slices"],
            "fps_mode": "passthrough",
        }
    for number, stream in enumerate(media.of_kind("audio")):
        options[f"c:a:{number}"] = preservation_audio_codec(stream)
    # Streams in the original's order, so stream N of the master is stream N of what was kept.
    return ffmpeg.output(*(src[str(stream.index)] for stream in kept), dest, **options)


# -------------------------------------------------------------------------------------- helpers
def _audio_tracks(src: Any, media: MediaInfo) -> Sequence[Any]:
    return [src[f"a:{number}"] for number in range(len(media.of_kind("audio")))]


def _jpeg(picture: Any, dest: str, profile: Profile) -> Any:
    return ffmpeg.output(
        picture, dest, **{"frames:v": 1, "update": 1, "q:v": profile["quality"], "f": "image2", "c:v": "mjpeg"}
    )


def _first(media: MediaInfo, kind: str, profile: Profile) -> StreamInfo:
    streams = media.of_kind(kind)
    if not streams:
        raise TranscodeError(profile.name, None, reason=f"the original has no {kind} stream")
    return streams[0]


def _input_name(path: Path) -> str:
    # "file:" so a name with a colon is never taken for a protocol (stored objects have no extension,
    # so the demuxer is chosen from the content).
    return f"file:{path}"


def _output_name(path: Path) -> str:
    return f"file:{path}"
