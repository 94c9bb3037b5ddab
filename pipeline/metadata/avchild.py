"""The reading side of :mod:`pipeline.metadata.avprobe`: a long-running child that opens files with
PyAV (libavformat in-process) and answers in ffprobe's words.

It is run as a program (``python -P avchild.py``), not imported by the pipeline, and imports only
the standard library and ``av``, so it starts quickly and a hostile file can hang only it: the
parent kills it and starts another.

Protocol, one JSON object per line on standard input and output:

- on start, ``{"ready": "PyAV <version> (libavformat <version>)"}``;
- request ``{"path": str, "still": bool, "check": bool}``;
- first answer ``{"probe": {...}}`` shaped like ``ffprobe -show_format -show_streams -of json``
  (only the keys the extractor reads), or ``{"failed": [lines]}`` when the file cannot be opened;
- when ``check`` is set and the file has video or audio, a second answer ``{"check": [lines]}``:
  the error lines of reading every packet (decoding, for a still), as ``ffmpeg -v error`` would
  print them. No lines means whole.

Strings the file holds that are not UTF-8 travel as surrogate escapes, as ffprobe's
``string_validation=ignore`` passes them through.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import IO, Any

_TIME_BASE = 1_000_000  # AV_TIME_BASE: the container's duration is in microseconds
_MEDIA = ("video", "audio")
_INT_MAX = 2**31 - 1


@contextmanager
def _captured(av: Any) -> Iterator[list[str]]:
    """Error lines libav logs in the block, each as ``[component] message`` (ffmpeg adds an address)."""
    lines: list[str] = []
    with av.logging.Capture(local=True) as logs:
        try:
            yield lines
        finally:
            logged = []
            for level, name, message in logs:
                if level is not None and level <= av.logging.ERROR:
                    text = str(message).rstrip("\n")
                    logged.append(f"[{name}] {text}" if name else text)
            lines[:0] = logged  # what libav said comes before the error it ended with


def _said(exc: BaseException, path: str) -> str:
    strerror = getattr(exc, "strerror", None) or str(exc)
    return f"{path}: {strerror}"


def _seconds(ticks: int | None, time_base: Fraction | None) -> str | None:
    """A time as ffprobe prints it: ``ticks * av_q2d(time_base)`` with six decimals."""
    if ticks is None or time_base is None or time_base.denominator == 0:
        return None
    return f"{ticks * (time_base.numerator / time_base.denominator):f}"


def _rate(value: Fraction | None) -> str:
    return f"{value.numerator}/{value.denominator}" if value else "0/0"


def _stream(stream: Any) -> dict[str, Any]:
    kind = stream.type or "data"
    entry: dict[str, Any] = {"index": stream.index, "codec_type": kind}
    context = stream.codec_context
    if context is not None and context.codec is not None:
        entry["codec_name"] = context.codec.canonical_name
    if kind == "video" and context is not None:
        entry["width"], entry["height"] = context.width, context.height
        entry["avg_frame_rate"] = _rate(stream.average_rate)
        entry["r_frame_rate"] = _rate(stream.base_rate)
        if context.framerate:
            entry["framerate"] = _rate(context.framerate)
    if kind == "audio" and context is not None:
        entry["sample_rate"] = str(context.sample_rate)
        entry["channels"] = context.channels
    duration = _seconds(stream.duration, stream.time_base)
    if duration is not None:
        entry["duration"] = duration
    if stream.frames:
        entry["nb_frames"] = str(stream.frames)
    if stream.metadata:
        entry["tags"] = dict(stream.metadata)
    return entry


def _probe(container: Any) -> dict[str, Any]:
    fmt: dict[str, Any] = {"format_name": container.format.name}
    streams = [_stream(stream) for stream in container.streams]
    duration = _seconds(container.duration, Fraction(1, _TIME_BASE))
    if duration is not None:
        fmt["duration"] = duration
    if container.metadata:
        fmt["tags"] = dict(container.metadata)
    return {"format": fmt, "streams": streams}


def _unusable_pictures(probe: dict[str, Any]) -> list[str]:
    """The video streams no picture can be made of, as ffmpeg refuses to set up their output: no size,
    or a size libav's image functions refuse (``av_image_check_size``)."""
    lines = []
    for stream in probe["streams"]:
        if stream["codec_type"] != "video":
            continue
        name, width, height = stream.get("codec_name", "video"), stream.get("width", 0), stream.get("height", 0)
        if width <= 0 or height <= 0:
            lines.append(f"[{name}] dimensions not set")
        elif (width + 128) * (height + 128) >= _INT_MAX // 8:
            lines.append(f"[{name}] Picture size {width}x{height} is invalid")
    return lines


def _check(av: Any, container: Any, path: str, still: bool) -> list[str]:
    """Read every video and audio packet (decode a still's pictures); the error lines it gave."""
    with _captured(av) as lines:
        try:
            if still:
                for _ in container.decode(video=0):
                    pass
            else:
                wanted = [stream for stream in container.streams if stream.type in _MEDIA]
                for _ in container.demux(*wanted):
                    pass
        except av.FFmpegError as exc:
            lines.append(_said(exc, path))
    return lines


def serve(av: Any, requests: IO[str], answer: Callable[[dict[str, Any]], None]) -> None:
    """Answer requests until standard input closes."""
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)  # the same damage in the next file must be reported again
    for line in requests:
        request = json.loads(line)
        path, still, check = str(request["path"]), bool(request["still"]), bool(request["check"])
        with _captured(av) as opening:
            try:
                container = av.open(path, metadata_errors="surrogateescape")
            except (av.FFmpegError, OSError) as exc:
                opening.append(_said(exc, path))
                container = None
        if container is None:
            answer({"failed": opening})
            continue
        with container:
            probe = _probe(container)
            answer({"probe": probe})
            if check and any(stream["codec_type"] in _MEDIA for stream in probe["streams"]):
                # ffmpeg's packet pass opens the file too: what libav said then counts as damage
                lines = opening + _unusable_pictures(probe) + _check(av, container, path, still)
                answer({"check": lines})


def main() -> None:
    import av  # only here: a parent that imports this module for its docstring does not load libav

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    libavformat = ".".join(str(part) for part in av.library_versions.get("libavformat", ()))
    answer({"ready": f"PyAV {av.__version__} (libavformat {libavformat or 'unknown'})"})
    serve(av, sys.stdin, answer)


if __name__ == "__main__":
    main()
