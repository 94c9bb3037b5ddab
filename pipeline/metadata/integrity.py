"""Is the recording whole? Cheap checks that find the damage evidence files actually suffer: a file
cut short because the camera lost power or a copy was interrupted.

For video and audio, ffmpeg (or libavformat in-process, :mod:`pipeline.metadata.avprobe`) demuxes
every packet to the null muxer without decoding (``ffmpeg -v error -i FILE -map 0:v? -map 0:a? -c
copy -f null -``). That reads the whole file at disk speed and reports packets that run past the end
("partial file"), which decoding would too, at a fraction of the cost: decoding an hour of 1080p
H.264 takes minutes, demuxing it takes seconds. It does not look for bit errors inside packets.
Stills are small, so they are decoded in full. ffmpeg exits 0 even when it logs such errors, so any
error line counts.

A WAV file's header announces how many bytes of sound follow; when the file holds fewer, it was cut
short even though every tool still plays what is there, so that is checked directly. A DV file is
a run of fixed-size frames; ffmpeg pads a frame cut in the middle and decodes it without a word, so
a DV file that does not hold a whole number of frames is reported too.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from pipeline.metadata.facts import MediaInfo, Problem
from pipeline.stage.issues import DAMAGED_MEDIA, TIMEOUT, TOOL_MISSING, TRUNCATED_STREAM
from pipeline.stage.tools import ToolError, ToolMissingError, ToolTimeoutError, run_tool

_CUT_SHORT = re.compile(r"partial file|truncat|end of file|moov atom not found|premature|overread", re.IGNORECASE)
_ADDRESS = re.compile(r" @ 0x[0-9a-f]+\]")  # "[mov,mp4,… @ 0x55fd86f66900]": differs every run
_MAX_CHUNKS = 4096  # a WAV header with more chunks than this before "data" is not one worth walking
_DV_FRAME_625, _DV_FRAME_525 = 144_000, 120_000  # bytes in a one-channel DV frame


def check_media(
    path: Path, media: MediaInfo, *, still: bool, shown: str, timeout: float, ffmpeg: str = "ffmpeg"
) -> list[Problem]:
    """Problems found by reading every packet (decoding a still); none when the file is whole."""
    if not any(stream.kind in ("video", "audio") for stream in media.streams):
        return []
    source = f"file:{path}"
    if still:
        args = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", source, "-f", "null", "-"]
    else:
        args = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", source]
        args += ["-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "null", "-"]
    try:
        run = run_tool(args, timeout)
    except ToolMissingError:
        return [Problem(TOOL_MISSING, f"{shown}: ffmpeg is not installed, so the file was not checked for damage")]
    except ToolTimeoutError as exc:
        return [
            Problem(TIMEOUT, f"{shown}: the check for damage did not finish within {exc.timeout:g} s; not known whole")
        ]
    except ToolError as exc:
        return [Problem(TOOL_MISSING, f"{shown}: {exc}; the file was not checked for damage")]
    lines = [readable_line(line, path, shown) for line in run.error_lines()]
    problems = packet_problems(lines, run.returncode, still=still, shown=shown, program="ffmpeg")
    return problems + length_problems(path, media, shown)


def packet_problems(lines: list[str], returncode: int, *, still: bool, shown: str, program: str) -> list[Problem]:
    """The verdict on the error lines of a packet pass (decoding, for a still) by ``program``."""
    if not lines and returncode == 0:
        return []
    said = "; ".join(lines) or f"{program} stopped with status {returncode}"
    if any(_CUT_SHORT.search(line) for line in lines):
        what = "image" if still else "recording"
        return [Problem(TRUNCATED_STREAM, f"{shown}: the {what} is cut short ({program}: {said})")]
    return [Problem(DAMAGED_MEDIA, f"{shown}: {program} found damage reading it ({program}: {said})")]


def length_problems(path: Path, media: MediaInfo, shown: str) -> list[Problem]:
    """The checks libav does not make: a WAV or DV file holding less than its headers promise."""
    if media.container == "wav":
        return check_wav_length(path, shown)
    if media.container == "dv":
        return check_dv_length(path, shown)
    return []


def check_dv_length(path: Path, shown: str) -> list[Problem]:
    """A problem when a DV file does not hold a whole number of frames.

    Every DV frame is whole DIF sequences of 12,000 bytes, 12 per channel in 625/50 video and 10 in
    525/60 (the first block says which); DV50 and DVCPRO HD frames have two or four channels, so
    every whole file is a multiple of 144,000 or 120,000 bytes.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        return [Problem(DAMAGED_MEDIA, f"{shown}: cannot be read: {exc.strerror or exc}")]
    if len(head) < 4 or head[0] >> 5 != 0:  # not a DIF header block: not a bare DV stream
        return []
    frame = _DV_FRAME_625 if head[3] & 0x80 else _DV_FRAME_525
    if size % frame == 0:
        return []
    return [
        Problem(
            TRUNCATED_STREAM,
            f"{shown}: the recording is cut short: it holds {size / frame:.2f} DV frames of {frame} bytes, "
            "not a whole number",
        )
    ]


def check_wav_length(path: Path, shown: str) -> list[Problem]:
    """A problem when the WAV header announces more sound than the file holds."""
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return []  # RF64 and others: their lengths live elsewhere
            position = 12
            for _ in range(_MAX_CHUNKS):
                handle.seek(position)
                header = handle.read(8)
                if len(header) < 8:
                    return []
                chunk, length = struct.unpack("<4sI", header)
                if chunk == b"data":
                    available = size - position - 8
                    if length in (0, 0xFFFFFFFF) or length <= available:
                        return []  # whole, or a recorder that never wrote the length (players read to the end)
                    return [
                        Problem(
                            TRUNCATED_STREAM,
                            f"{shown}: the recording is cut short: its header announces {length} bytes of sound, "
                            f"the file holds {available}",
                        )
                    ]
                position += 8 + length + (length & 1)
    except OSError as exc:
        return [Problem(DAMAGED_MEDIA, f"{shown}: cannot be read: {exc.strerror or exc}")]
    return []


def readable_line(line: str, path: Path, shown: str) -> str:
    """An ffmpeg message with the stored object's path replaced by the file's name, addresses removed."""
    line = line.replace(f"file:{path}", shown).replace(str(path), shown)
    return _ADDRESS.sub("]", line)
