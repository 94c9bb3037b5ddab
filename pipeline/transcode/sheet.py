"""What a contact sheet needs beyond its ffmpeg command: the number of frames of a clip that does not
state its duration, and timestamp labels with or without a font for ffmpeg.

A clip whose duration is unknown (a Matroska file written to a pipe, a raw H.264 stream, a
container that says N/A) or zero would give a sheet of its first frame only; :func:`count_frames`
reads its video packets (no decoding) and :func:`with_counted_frames` records the count, so the
sheet can show the frames the clip really has.

ffmpeg's ``drawtext`` filter needs a font file. On Debian one is nearly always there (fontconfig,
which ffmpeg depends on, pulls in DejaVu or another font), and :func:`find_font` finds it through
``fc-match`` or the usual font folders. When there is none, the sheet is made unlabelled and
:func:`label_contact_sheet` writes the labels with Pillow's built-in bitmap font, which needs no
font file at all.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from pipeline.metadata.facts import MediaInfo
from pipeline.stage.tools import ToolError, run_tool
from pipeline.transcode.commands import MAX_RATE, SHEET_PADDING, ContactSheetLayout, positive_number
from pipeline.transcode.errors import TranscodeError

FFPROBE = "ffprobe"
FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
_PREFERRED = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")
_FONT_TIMEOUT = 10.0


def count_frames(source: Path, *, timeout: float, ffprobe_path: str = FFPROBE) -> int | None:
    """How many packets the first video stream of ``source`` holds (a packet is a frame for the
    codecs cameras write), counted by reading them all; ``None`` when ffprobe cannot tell."""
    args = [ffprobe_path, "-v", "error", "-select_streams", "v:0", "-count_packets"]
    args += ["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", f"file:{source}"]
    try:
        run = run_tool(args, timeout)
    except ToolError:
        return None
    words = run.stdout.decode("ascii", "replace").replace(",", " ").split()
    if run.returncode != 0 or not words or not words[0].isdigit():
        return None
    return int(words[0]) or None


def with_counted_frames(media: MediaInfo, source: Path, *, timeout: float, ffprobe_path: str = FFPROBE) -> MediaInfo:
    """``media`` with its first video stream's frames counted (``StreamInfo.frames``) when the video
    states no duration of its own, or zero, or no believable frame rate; unchanged otherwise, or
    when the frames cannot be counted. A rate that was missing is worked out from the count and
    the duration, when there is one.

    The container's duration is not enough: in Matroska it is the longest stream's, and sound that
    outlasts the pictures would send the last cells past the last frame.
    """
    videos = media.of_kind("video")
    if not videos:
        return media
    video = videos[0]
    rate = positive_number(video.frame_rate, MAX_RATE)
    if positive_number(video.duration) and rate:
        return media
    frames = count_frames(source, timeout=timeout, ffprobe_path=ffprobe_path)
    if frames is None:
        return media
    duration = positive_number(video.duration) or positive_number(media.duration)
    if rate is None and duration is not None:
        rate = positive_number(round(frames / duration, 3), MAX_RATE)
    counted = replace(video, frames=frames, frame_rate=rate or video.frame_rate)
    return replace(media, streams=tuple(counted if stream is video else stream for stream in media.streams))


def find_font() -> Path | None:
    """A sans-serif font file ffmpeg's drawtext can use, or ``None`` when the machine has none."""
    if shutil.which("fc-match"):
        try:
            run = run_tool(["fc-match", "--format=%{file}", "sans"], _FONT_TIMEOUT)
        except ToolError:
            run = None
        if run is not None and run.returncode == 0:
            found = Path(run.stdout.decode("utf-8", "replace").strip())
            if found.suffix.lower() in (".ttf", ".otf") and found.is_file():
                return found
    candidates: list[Path] = []
    for folder in FONT_FOLDERS:
        if folder.is_dir():
            candidates += sorted(folder.rglob("*.ttf")) + sorted(folder.rglob("*.otf"))
    for name in _PREFERRED:
        for candidate in candidates:
            if candidate.name == name:
                return candidate
    return candidates[0] if candidates else None


def label_contact_sheet(path: Path, layout: ContactSheetLayout, *, quality: int = 90) -> None:
    """Write each cell's label (its time, or its frame number: :meth:`ContactSheetLayout.labels`) into
    the unlabelled contact sheet at ``path``, in place, where ffmpeg's drawtext would have put it."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise TranscodeError(
            "contact-sheet",
            None,
            reason="no font for ffmpeg's drawtext was found and Pillow is not installed to label the sheet",
        ) from exc
    try:
        with Image.open(path) as opened:
            sheet = opened.convert("RGB")
    except Image.DecompressionBombError as exc:  # not an OSError; a sheet of absurdly tall cells
        raise TranscodeError("contact-sheet", None, reason=f"the sheet is too large to label: {exc}") from exc
    cell_width = (sheet.width - SHEET_PADDING * (layout.columns - 1)) // layout.columns
    cell_height = (sheet.height - SHEET_PADDING * (layout.rows - 1)) // layout.rows
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for number, text in enumerate(layout.labels()):
        row, column = divmod(number, layout.columns)
        left = column * (cell_width + SHEET_PADDING)
        bottom = row * (cell_height + SHEET_PADDING) + cell_height
        box = draw.textbbox((0, 0), text, font=font)
        x, y = left + 4, bottom - (box[3] - box[1]) - 8
        draw.rectangle((x - 3, y - 3, x + box[2] + 3, y + box[3] + 3), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    sheet.save(path, format="JPEG", quality=quality)
