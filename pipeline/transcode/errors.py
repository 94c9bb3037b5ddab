"""Errors of the transcode stage: a profiles file that cannot be used, and an ffmpeg run that failed.

A failed run carries the last lines ffmpeg wrote to standard error, because that is where it says
what was wrong with the input (a missing index, a cut-off stream) and a custodian needs that text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import PipelineError


class ProfileError(PipelineError):
    """The transcode profiles file cannot be used; ``details`` lists every mistake found."""

    def __init__(self, path: str | Path, details: Sequence[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(details))
        self.path = str(path)
        self.details = list(details)


class TranscodeError(PipelineError):
    """A derivative could not be made. ``returncode`` is ffmpeg's status (``None`` when it did not
    finish or never ran) and ``stderr_tail`` the last lines it wrote to standard error."""

    def __init__(
        self,
        profile: str | None,
        returncode: int | None,
        stderr_tail: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        self.profile = profile
        self.returncode = returncode
        self.stderr_tail = tuple(stderr_tail)
        if reason is None:
            reason = f"ffmpeg stopped with status {returncode}"
        self.reason = reason
        said = f" (ffmpeg: {' | '.join(self.stderr_tail[-3:])})" if self.stderr_tail else ""
        super().__init__(f"{profile or 'transcode'}: {reason}{said}")


class TranscodeTimeoutError(TranscodeError):
    """ffmpeg ran past its deadline; its process group was killed."""

    def __init__(self, profile: str | None, timeout: float, stderr_tail: Sequence[str] = ()) -> None:
        super().__init__(profile, None, stderr_tail, f"ffmpeg did not finish within {timeout:g} s and was stopped")
        self.timeout = timeout
