"""Whether an original's streams already play in a browser, so its access copy can be a stream copy
(a remux into MP4) instead of a new encoding.

Body cameras nearly always record H.264 with AAC in MP4, which every browser plays; encoding that
again costs minutes of CPU per clip and loses quality for nothing. The decision is made from the
codec facts ffprobe reports (profile, level, pixel format, scan type: the catalog's probe does not
keep them) and is explainable: :class:`AccessPlan` says what will be done and why, in words a
custodian can read, and the stage records it with the copy.

A stream copy is made when every one of these holds, and a new encoding otherwise:

- the profile allows it (``remux``, on by default; ``remux_hevc`` for HEVC, off by default since
  not every browser plays HEVC);
- the container carries timestamps a stream copy can keep (MP4/MOV, Matroska/WebM, MPEG-TS); a
  bare stream has none;
- the first video stream is H.264 Constrained Baseline, Main or High at level 5.1 or lower, or
  HEVC Main at level 5.1 or lower, 8-bit 4:2:0 (``yuv420p`` or full-range ``yuvj420p``),
  progressive, with even dimensions within the profile's size limit;
- every audio track is AAC or MP3 (or there is none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.stage.tools import ToolError, run_tool
from pipeline.transcode.profiles import Profile

FFPROBE = "ffprobe"
REMUX = "remux"
RE_ENCODE = "re-encode"

# ffprobe's format names of containers whose timestamps survive a stream copy into MP4.
TIMED_CONTAINERS = frozenset(["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "mpegts"])
# Containers whose packets are stored as MP4 stores them (length-prefixed H.264/HEVC, raw AAC), so
# the copy's packets hash exactly like the original's. MPEG-TS stores start codes and ADTS headers,
# which the MP4 muxer rewrites.
SAME_PACKETS = frozenset(["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm"])
H264_PROFILES = frozenset(["Constrained Baseline", "Main", "High"])
HEVC_PROFILES = frozenset(["Main"])
PIXEL_FORMATS = frozenset(["yuv420p", "yuvj420p"])
AUDIO_CODECS = frozenset(["aac", "mp3"])
# Highest level: 5.1. ffprobe reports H.264 levels times 10 and HEVC levels times 30.
MAX_LEVEL = {"h264": 51, "hevc": 153}
INTERLACED = frozenset(["tt", "bb", "tb", "bt"])
_CODEC_NAMES = {"h264": "H.264", "hevc": "HEVC"}


@dataclass(frozen=True)
class AccessPlan:
    """How a video access copy is made: ``how`` is ``remux`` or ``re-encode``, ``why`` says why."""

    how: str
    why: str
    same_packets: bool = False  # a remux whose packets can be compared with the original's

    @property
    def remux(self) -> bool:
        return self.how == REMUX

    def as_json(self) -> dict[str, str]:
        return {"how": self.how, "why": self.why}


def plan_access(profile: Profile, source: Path, *, timeout: float, ffprobe_path: str = FFPROBE) -> AccessPlan:
    """Probe ``source``'s codecs and decide how its access copy is made with ``profile``."""
    if not profile.params.get("remux", False):
        return AccessPlan(RE_ENCODE, "the profile asks for every copy to be encoded")
    try:
        facts = probe_codecs(source, timeout=timeout, ffprobe_path=ffprobe_path)
    except ToolError as exc:
        return AccessPlan(RE_ENCODE, f"its codecs could not be read ({exc}), so it is encoded")
    return decide(profile, facts)


def probe_codecs(source: Path, *, timeout: float, ffprobe_path: str = FFPROBE) -> Mapping[str, Any]:
    """ffprobe's JSON of ``source``'s container name and every stream's codec facts (no decoding).
    Raises :class:`ToolError` when ffprobe cannot run or read it."""
    entries = "format=format_name:stream=index,codec_type,codec_name,profile,level,pix_fmt,width,height,field_order"
    args = [ffprobe_path, "-v", "error", "-show_entries", entries, "-show_entries", "stream_disposition=attached_pic"]
    run = run_tool([*args, "-of", "json", f"file:{source}"], timeout)
    if run.returncode != 0:
        raise ToolError(ffprobe_path, "; ".join(run.error_lines()) or f"stopped with status {run.returncode}")
    try:
        facts = json.loads(run.stdout.decode("utf-8", "replace") or "{}")
    except ValueError as exc:
        raise ToolError(ffprobe_path, f"its output is not JSON: {exc}") from exc
    if not isinstance(facts, dict):
        raise ToolError(ffprobe_path, "its output is not a JSON object")
    return facts


def decide(profile: Profile, facts: Mapping[str, Any]) -> AccessPlan:
    """The plan for an original whose ffprobe JSON is ``facts`` (see :func:`probe_codecs`): a remux
    with what makes it playable, or a new encoding with every reason it is not."""
    fmt = facts.get("format") or {}
    containers = set(str(fmt.get("format_name") or "").split(","))
    streams: Sequence[Mapping[str, Any]] = [s for s in facts.get("streams") or [] if isinstance(s, dict)]
    videos = [s for s in streams if s.get("codec_type") == "video" and not _attached_picture(s)]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not videos:
        return AccessPlan(RE_ENCODE, "it has no video stream a copy could keep")
    video = videos[0]
    problems: list[str] = []
    if not containers & TIMED_CONTAINERS:
        problems.append(f"its container ({fmt.get('format_name') or 'unknown'}) has no timestamps a copy can keep")
    codec = str(video.get("codec_name") or "unknown")
    if codec == "hevc" and not profile.params.get("remux_hevc", False):
        problems.append("it is HEVC, which the profile does not copy")
    elif codec not in MAX_LEVEL:
        problems.append(f"its video is {codec}, not H.264")
    else:
        problems.extend(_video_problems(codec, video))
    problems.extend(_size_problems(profile, video))
    odd_audio = sorted({str(a.get("codec_name") or "unknown") for a in audios} - AUDIO_CODECS)
    if odd_audio:
        problems.append(f"its audio is {', '.join(odd_audio)}, not AAC or MP3")
    if problems:
        return AccessPlan(RE_ENCODE, "; ".join(problems))
    sound = f"{len(audios)} {'/'.join(sorted({str(a['codec_name']).upper() for a in audios}))} track(s)"
    level = int(video["level"]) / (10 if codec == "h264" else 30)
    why = (
        f"{_CODEC_NAMES[codec]} {video.get('profile')} level {level:g} {video.get('pix_fmt')} "
        f"{video.get('width')}x{video.get('height')} with {sound if audios else 'no audio'} "
        "already plays in a browser"
    )
    return AccessPlan(REMUX, why, same_packets=bool(containers & SAME_PACKETS))


def _attached_picture(stream: Mapping[str, Any]) -> bool:
    disposition = stream.get("disposition") or {}
    return bool(disposition.get("attached_pic")) if isinstance(disposition, dict) else False


def _video_problems(codec: str, video: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    profiles = H264_PROFILES if codec == "h264" else HEVC_PROFILES
    name = _CODEC_NAMES[codec]
    if video.get("profile") not in profiles:
        problems.append(
            f"its {name} profile is {video.get('profile') or 'unknown'}, not {' or '.join(sorted(profiles))}"
        )
    level = video.get("level")
    if not isinstance(level, int) or not 0 < level <= MAX_LEVEL[codec]:
        problems.append(f"its {name} level ({level}) is unknown or above 5.1")
    if video.get("pix_fmt") not in PIXEL_FORMATS:
        problems.append(f"its pixels are {video.get('pix_fmt') or 'unknown'}, not 8-bit 4:2:0")
    if video.get("field_order") in INTERLACED:
        problems.append("it is interlaced")
    return problems


def _size_problems(profile: Profile, video: Mapping[str, Any]) -> list[str]:
    width, height = video.get("width"), video.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        return ["its picture size is unknown"]
    wide, tall = int(profile["max_width"]), int(profile["max_height"])
    long_side, short_side = max(wide, tall), min(wide, tall)
    if max(width, height) > long_side or min(width, height) > short_side:
        return [f"its picture ({width}x{height}) is larger than {long_side}x{short_side}"]
    if width % 2 or height % 2:
        return [f"its picture ({width}x{height}) has an odd dimension"]
    return []
