"""Running the external programs extractors rely on (ffprobe, ffmpeg, exiftool), always with a
deadline, and naming their version for the record.

A damaged file can make a demuxer loop or wait; a program that outlives its deadline is killed and
reported as :class:`ToolTimeoutError`, a program that is not installed as :class:`ToolMissingError`.
Extractors turn both into problems on the file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.errors import PipelineError

VERSION_TIMEOUT = 15.0
_versions: dict[tuple[str, str], str] = {}  # a missing program is asked again next time


class ToolError(PipelineError):
    """An external program could not do its work."""

    def __init__(self, program: str, reason: str) -> None:
        super().__init__(f"{program}: {reason}")
        self.program = program
        self.reason = reason


class ToolMissingError(ToolError):
    """The program is not installed (or not on PATH)."""


class ToolTimeoutError(ToolError):
    """The program ran past its deadline and was killed."""

    def __init__(self, program: str, timeout: float) -> None:
        super().__init__(program, f"did not finish within {timeout:g} s")
        self.timeout = timeout


@dataclass(frozen=True)
class ToolRun:
    returncode: int
    stdout: bytes
    stderr: bytes

    def error_lines(self, limit: int = 5) -> list[str]:
        """The first distinct non-empty lines of standard error, decoded for people."""
        lines: list[str] = []
        for raw in self.stderr.splitlines():
            line = raw.decode("utf-8", "replace").strip()
            if line and line not in lines:
                lines.append(line)
            if len(lines) == limit:
                break
        return lines


def run_tool(args: Sequence[str], timeout: float) -> ToolRun:
    """Run ``args`` with no standard input, capturing its output, killed after ``timeout`` seconds."""
    try:
        done = subprocess.run(list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ToolMissingError(args[0], "is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolTimeoutError(args[0], timeout) from exc
    except OSError as exc:
        raise ToolError(args[0], f"cannot be started: {exc.strerror or exc}") from exc
    return ToolRun(done.returncode, done.stdout, done.stderr)


def tool_version(program: str, flag: str = "-version") -> str | None:
    """``"<program> <version>"`` as the program reports it, or ``None`` when it cannot be run.

    ffmpeg's tools answer ``-version`` with "ffprobe version 5.1.6-0+deb12u1 Copyright …";
    exiftool answers ``-ver`` with the bare number.
    """
    known = _versions.get((program, flag))
    if known is not None:
        return known
    try:
        done = run_tool([program, flag], VERSION_TIMEOUT)
    except ToolError:
        return None
    words = done.stdout.decode("utf-8", "replace").split()
    if done.returncode != 0 or not words:
        return None
    if len(words) >= 3 and words[1] == "version":
        version = f"{words[0]} {words[2]}"
    else:
        version = f"{program.rsplit('/', 1)[-1]} {words[0]}"
    _versions[(program, flag)] = version
    return version
