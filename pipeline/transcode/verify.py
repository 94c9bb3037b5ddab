"""Checking a derivative after it is made, before anyone relies on it.

- **Preservation master** (``method="stream-hash"``): the original and the master are both decoded
  and every video and audio stream is hashed (SHA-256 of the decoded pictures in the decoder's own
  pixel format, and of the decoded samples as 64-bit float PCM, which holds 16-, 24- and 32-bit
  integer and 32-bit float samples exactly). Stream N of the master must hash like stream N of the
  original. For an AAC or MP3 original this compares the decoded samples, which is what the master
  stores; the compressed packets themselves stay in the original. Timestamps are not compared
  (Matroska keeps milliseconds), frame count and content are: a dropped, added or altered frame or
  sample fails with the stream named.
- **Access copies and pictures** (``method="decode-check"``): the derivative decodes with no error
  line from ffmpeg; audio and video copies have as many audio tracks as the original, video when
  the original had video, and a duration within the profile's tolerance (the larger of
  ``duration_tolerance`` seconds and ``duration_tolerance_percent`` of the original's duration);
  pictures are decoded in full in-process (Pillow) and must be no larger than the profile allows;
  a contact sheet has the columns and rows its layout
  (:func:`~pipeline.transcode.commands.contact_sheet_layout`) gives the original, whole cells of
  the profile's width side by side. Each derivative is decoded once, in full (skipping frames
  would hide damage in the ones skipped).
- **Remuxed access copies** are checked the same way, and in the same decoding run their video and
  audio packets are hashed as they are read: each stream must hash like the original's packets
  (read, not decoded), which shows the copy holds exactly the pictures and sound the original does.
  Where the original stores its packets differently from MP4 (MPEG-TS) they are not compared.
  The same decoding run makes the copy's poster and contact sheet when asked to (the copy's
  frames are the original's, its packets being the same): one decoding per clip, not three. A
  run that reports an error is repeated without them, so a picture cannot fail the copy.

A failed check is a :class:`Verification` with ``ok=False`` and a ``reason`` a custodian can read,
never an exception: a damaged original must not stop the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.metadata.facts import ExtractionContext, MediaInfo
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.stage.tools import ToolError, ToolRun, run_tool
from pipeline.transcode.commands import FFMPEG, SHEET_PADDING, contact_sheet_layout
from pipeline.transcode.errors import TranscodeError
from pipeline.transcode.profiles import PRESERVATION, Profile

STREAM_HASH = "stream-hash"
DECODE_CHECK = "decode-check"
_PICTURES = frozenset(["image-access", "poster", "contact-sheet", "waveform"])
_KIND_NAMES = {"v": "video", "a": "audio"}


@dataclass(frozen=True)
class Verification:
    ok: bool
    method: str  # stream-hash | decode-check
    details: dict[str, Any] = field(default_factory=dict)  # what was measured, for the custody record
    reason: str | None = None  # why it failed, in plain language


def verify_derivative(
    profile: Profile,
    media: MediaInfo,
    source: Path,
    derivative: Path,
    *,
    timeout: float,
    ffmpeg_path: str = FFMPEG,
    same_packets: bool = False,
    pictures: Sequence[str] = (),
) -> Verification:
    """Check ``derivative``, made from ``source`` (probed as ``media``) with ``profile``;
    ``same_packets`` when it is a stream copy whose packets must be the original's. ``pictures``
    (see :func:`verify_copy`) are made in the decoding that checks it."""
    if profile.kind == PRESERVATION:
        return verify_lossless(source, derivative, timeout=timeout, ffmpeg_path=ffmpeg_path)
    packets_of = source if same_packets else None
    return verify_copy(
        profile, media, derivative, timeout=timeout, ffmpeg_path=ffmpeg_path, packets_of=packets_of, pictures=pictures
    )


def verify_lossless(source: Path, master: Path, *, timeout: float, ffmpeg_path: str = FFMPEG) -> Verification:
    """Decode both files and compare every video and audio stream's hash."""
    try:
        original, original_errors = stream_hashes(source, timeout=timeout, ffmpeg_path=ffmpeg_path)
        kept, kept_errors = stream_hashes(master, timeout=timeout, ffmpeg_path=ffmpeg_path)
    except ToolError as exc:
        return Verification(False, STREAM_HASH, {}, f"the streams could not be hashed: {exc}")
    details: dict[str, Any] = {
        "hash": "sha256",
        "source": [f"{kind}:{digest}" for kind, digest in original],
        "master": [f"{kind}:{digest}" for kind, digest in kept],
    }
    problems: list[str] = []
    if kept_errors:
        problems.append(f"the master does not decode cleanly: {'; '.join(kept_errors)}")
    if original_errors:
        details["source_errors"] = original_errors  # the original's own damage is kept in the master as decoded
    if [kind for kind, _ in original] != [kind for kind, _ in kept]:
        shown = ", ".join(_KIND_NAMES.get(kind, kind) for kind, _ in kept) or "none"
        wanted = ", ".join(_KIND_NAMES.get(kind, kind) for kind, _ in original) or "none"
        problems.append(f"the master has streams {shown} where the original has {wanted}")
    else:
        for number, ((kind, want), (_, got)) in enumerate(zip(original, kept, strict=True)):
            if want != got:
                problems.append(
                    f"stream {number} ({_KIND_NAMES.get(kind, kind)}) decodes differently from the original's"
                )
    return Verification(not problems, STREAM_HASH, details, "; ".join(problems) or None)


def stream_hashes(path: Path, *, timeout: float, ffmpeg_path: str = FFMPEG) -> tuple[list[tuple[str, str]], list[str]]:
    """``[(kind, sha256 hex), …]`` of every decoded video and audio stream in order, and the error
    lines ffmpeg wrote while decoding. Raises :class:`ToolError` when ffmpeg cannot run or read it."""
    args = [ffmpeg_path, "-hide_banner", "-nostdin", "-v", "error", "-i", f"file:{path}"]
    args += ["-map", "0:v?", "-map", "0:a?", "-c:v", "rawvideo", "-c:a", "pcm_f64le", "-fps_mode", "passthrough"]
    args += ["-f", "streamhash", "-hash", "sha256", "-"]
    run = run_tool(args, timeout)
    errors = run.error_lines()
    if run.returncode != 0:
        raise ToolError(ffmpeg_path, "; ".join(errors) or f"stopped with status {run.returncode}")
    return _hash_lines(run.stdout), errors


def verify_copy(
    profile: Profile,
    media: MediaInfo,
    derivative: Path,
    *,
    timeout: float,
    ffmpeg_path: str = FFMPEG,
    packets_of: Path | None = None,
    pictures: Sequence[str] = (),
) -> Verification:
    """Decode ``derivative`` and compare what it holds with what the original holds; with
    ``packets_of`` (the original of a stream copy), also compare their packets, read in the same run.

    ``pictures`` are ffmpeg outputs of the derivative's video (the filter graph and outputs of
    :func:`~pipeline.transcode.commands.picture_outputs`) made in the same decoding run, so that a
    stream copy's poster and contact sheet cost no decoding of their own. When that run reports an
    error, the derivative is decoded once more on its own, so that only its own errors count.
    """
    if profile.kind in _PICTURES:
        return verify_picture(profile, media, derivative)
    problems: list[str] = []
    details: dict[str, Any] = {}
    try:
        if packets_of is None:
            errors = decode_errors(derivative, timeout=timeout, ffmpeg_path=ffmpeg_path)
        else:
            errors, copied, original = decode_and_compare(
                derivative, packets_of, timeout=timeout, ffmpeg_path=ffmpeg_path, pictures=pictures
            )
            if errors:  # the pictures' outputs or the original's reading may be what failed: the copy alone
                errors, copied = decode_and_hash(derivative, timeout=timeout, ffmpeg_path=ffmpeg_path)
                original = packet_hashes(packets_of, timeout=timeout, ffmpeg_path=ffmpeg_path)
            problems.extend(_packet_problems(original, copied, details))
    except ToolError as exc:
        return Verification(False, DECODE_CHECK, details, f"the derivative could not be decoded: {exc}")
    if errors:
        details["decode_errors"] = errors
        problems.append(f"it does not decode cleanly: {'; '.join(errors)}")
    context = ExtractionContext(original_name=derivative.name, media_kind="video")
    probed = FfprobeExtractor(check_integrity=False).extract(derivative, context).media
    if probed is None:
        problems.append("ffprobe cannot read it")
        return Verification(False, DECODE_CHECK, details, "; ".join(problems))
    videos, audios = probed.of_kind("video"), probed.of_kind("audio")
    if videos and videos[0].width and videos[0].height:
        details["size"] = [videos[0].width, videos[0].height]
    problems.extend(_timed_problems(profile, media, probed, details))
    details["audio_tracks"] = [len(media.of_kind("audio")), len(audios)]
    return Verification(not problems, DECODE_CHECK, details, "; ".join(problems) or None)


def verify_picture(profile: Profile, media: MediaInfo, picture: Path) -> Verification:
    """Decode the whole picture (an access image, a poster, a contact sheet or a waveform) with Pillow
    and check its size: no larger than the profile allows, and a contact sheet as many cells wide
    and high as its layout says. A picture that does not decode, or decodes with an error, fails."""
    from PIL import Image

    details: dict[str, Any] = {}
    try:
        with Image.open(picture) as opened:
            size = opened.size
            opened.load()  # every block decoded; a truncated or corrupt picture raises
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = f"it does not decode cleanly: {exc}"
        details["decode_errors"] = [str(exc)]
        return Verification(False, DECODE_CHECK, details, reason)
    width, height = size
    details["size"] = [width, height]
    problems = _picture_problems(profile, width, height)
    if profile.kind == "contact-sheet" and not problems:
        problems.extend(_sheet_problems(profile, media, width, height, details))
    details["audio_tracks"] = [len(media.of_kind("audio")), 0]
    return Verification(not problems, DECODE_CHECK, details, "; ".join(problems) or None)


def decode_errors(path: Path, *, timeout: float, ffmpeg_path: str = FFMPEG) -> list[str]:
    """The error lines ffmpeg writes while decoding every stream of ``path`` (none when it is whole)."""
    return decode_and_hash(path, timeout=timeout, ffmpeg_path=ffmpeg_path, hash_packets=False)[0]


def _decoding(ffmpeg_path: str, *inputs: Path) -> list[str]:
    """The start of an ffmpeg command that reads ``inputs`` and reports only errors."""
    args = [ffmpeg_path, "-hide_banner", "-nostdin", "-v", "error", "-y"]
    for path in inputs:
        args += ["-i", f"file:{path}"]
    return args


def _run_errors(run: ToolRun) -> list[str]:
    """The error lines of an ffmpeg run, or its exit status when it stopped without saying why."""
    errors = run.error_lines()
    if run.returncode != 0 and not errors:
        errors = [f"ffmpeg stopped with status {run.returncode}"]
    return errors


def decode_and_hash(
    path: Path,
    *,
    timeout: float,
    ffmpeg_path: str = FFMPEG,
    hash_packets: bool = True,
    pictures: Sequence[str] = (),
) -> tuple[list[str], list[tuple[str, str]]]:
    """The error lines ffmpeg writes while decoding every stream of ``path``, and (``hash_packets``)
    the SHA-256 of its first video stream's and every audio stream's packets as
    :func:`packet_hashes` gives them, taken in the same run as the packets are read for decoding.
    ``pictures`` are further outputs made from the same decoded frames (see :func:`verify_copy`)."""
    args = [*_decoding(ffmpeg_path, path), *pictures, "-map", "0", "-f", "null", "-"]
    run = run_tool([*args, *_PACKET_HASH] if hash_packets else args, timeout)
    return _run_errors(run), _hash_lines(run.stdout) if hash_packets else []


def decode_and_compare(
    path: Path, original: Path, *, timeout: float, ffmpeg_path: str = FFMPEG, pictures: Sequence[str] = ()
) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    """:func:`decode_and_hash` of the stream copy ``path`` and :func:`packet_hashes` of its
    ``original`` in one ffmpeg run (the original is read, not decoded): the error lines of the run,
    the copy's packet hashes and the original's."""
    hashes = path.with_name(f".{path.name}.original-packets")
    args = _decoding(ffmpeg_path, path, original)
    args += [*pictures, "-map", "0", "-f", "null", "-", *_PACKET_HASH]
    args += ["-map", "1:v:0", "-map", "1:a?", "-c", "copy", "-f", "streamhash", "-hash", "sha256", f"file:{hashes}"]
    try:
        run = run_tool(args, timeout)
        errors = _run_errors(run)
        try:
            read = hashes.read_bytes()
        except FileNotFoundError:
            read = b""
            errors = errors or ["ffmpeg wrote no packet hashes of the original"]
    finally:
        hashes.unlink(missing_ok=True)
    return errors, _hash_lines(run.stdout), _hash_lines(read)


def packet_hashes(path: Path, *, timeout: float, ffmpeg_path: str = FFMPEG) -> list[tuple[str, str]]:
    """``[(kind, sha256 hex), …]`` of the packets of ``path``'s first video stream and every audio
    stream, in that order, read without decoding. Raises :class:`ToolError` when ffmpeg cannot."""
    run = run_tool(
        [ffmpeg_path, "-hide_banner", "-nostdin", "-v", "error", "-i", f"file:{path}", *_PACKET_HASH], timeout
    )
    if run.returncode != 0:
        raise ToolError(ffmpeg_path, "; ".join(run.error_lines()) or f"stopped with status {run.returncode}")
    return _hash_lines(run.stdout)


# The packets of the streams an access copy keeps, hashed as they are (stream copy, no decoding).
_PACKET_HASH = ("-map", "0:v:0", "-map", "0:a?", "-c", "copy", "-f", "streamhash", "-hash", "sha256", "-")


def _hash_lines(stdout: bytes) -> list[tuple[str, str]]:
    """``(kind, digest)`` from each ``index,kind,SHA256=digest`` line of the streamhash muxer."""
    hashes: list[tuple[str, str]] = []
    for line in stdout.decode("ascii", "replace").splitlines():
        parts = line.strip().split(",")
        if len(parts) == 3 and "=" in parts[2]:
            hashes.append((parts[1], parts[2].partition("=")[2].lower()))
    return hashes


def _packet_problems(
    original: list[tuple[str, str]], copied: list[tuple[str, str]], details: dict[str, Any]
) -> list[str]:
    details["packets"] = {"hash": "sha256", "original": [f"{k}:{d}" for k, d in original]}
    if not original or [kind for kind, _ in original] != [kind for kind, _ in copied]:
        details["packets"]["copy"] = [f"{k}:{d}" for k, d in copied]
        return ["its streams are not the original's streams"]
    changed = [
        f"stream {number} ({_KIND_NAMES.get(kind, kind)})"
        for number, ((kind, want), (_, got)) in enumerate(zip(original, copied, strict=True))
        if want != got
    ]
    details["packets"]["same"] = not changed
    if changed:
        return [f"the packets of {', '.join(changed)} differ from the original's"]
    return []


def _picture_problems(profile: Profile, width: int, height: int) -> list[str]:
    if not width or not height:
        return ["it holds no picture"]
    limit = profile.params.get("max_dimension")
    if limit is not None and max(width, height) > int(limit):
        return [f"it is {width}x{height}, larger than the profile's {limit} pixels"]
    return []


def _sheet_problems(profile: Profile, media: MediaInfo, width: int, height: int, details: dict[str, Any]) -> list[str]:
    """A contact sheet is as many cells wide and high as its layout says: every cell the profile's
    width, with the tile filter's padding between them."""
    try:
        layout = contact_sheet_layout(profile, media)
    except TranscodeError as exc:
        return [f"its layout cannot be worked out: {exc.reason}"]
    details["grid"] = [layout.columns, layout.rows]
    details["cells"] = list(layout.labels())
    wanted = layout.columns * int(profile["cell_width"]) + SHEET_PADDING * (layout.columns - 1)
    rows_height = height - SHEET_PADDING * (layout.rows - 1)
    if width != wanted:
        return [f"it is {width} pixels wide, not {wanted} ({layout.columns} column(s) of {profile['cell_width']})"]
    if rows_height <= 0 or rows_height % layout.rows:
        return [f"its {height} pixels of height do not make {layout.rows} row(s) of equal cells"]
    return []


def _timed_problems(profile: Profile, media: MediaInfo, probed: MediaInfo, details: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    wanted_audio, got_audio = len(media.of_kind("audio")), len(probed.of_kind("audio"))
    if got_audio != wanted_audio:
        problems.append(f"it has {got_audio} audio track(s) where the original has {wanted_audio}")
    if profile.kind == "video-access":
        videos = probed.of_kind("video")
        if media.of_kind("video") and not videos:
            problems.append("it has no video where the original has")
        elif videos and videos[0].width and videos[0].height:
            problems.extend(_size_problems(profile, videos[0].width, videos[0].height))
    if media.duration is not None:
        tolerance = max(
            float(profile["duration_tolerance"]), media.duration * float(profile["duration_tolerance_percent"]) / 100
        )
        details["duration"] = [media.duration, probed.duration]
        details["duration_tolerance"] = round(tolerance, 3)
        if probed.duration is None:
            problems.append("its duration cannot be read")
        elif abs(probed.duration - media.duration) > tolerance:
            problems.append(
                f"it lasts {probed.duration:.3f} s where the original lasts {media.duration:.3f} s "
                f"(tolerance {tolerance:.3f} s)"
            )
    return problems


def _size_problems(profile: Profile, width: int, height: int) -> list[str]:
    wide, tall = int(profile["max_width"]), int(profile["max_height"])
    long_side, short_side = max(wide, tall), min(wide, tall)
    problems = []
    if max(width, height) > long_side or min(width, height) > short_side:
        problems.append(f"its picture is {width}x{height}, larger than {long_side}x{short_side}")
    if width % 2 or height % 2:
        problems.append(f"its picture is {width}x{height}; H.264 4:2:0 needs even dimensions")
    return problems
