"""Making one derivative of an original: build the command, run it, finish it, verify it.

The original is only ever read. The derivative is written under a temporary name beside ``dest``
and takes its final name only once it has been verified, so a reader never sees a half-written or
unverified file under a derivative's name; a failed one is removed and the failure returned (or
raised, when ffmpeg itself failed) with ffmpeg's own words.

A video access copy is first planned (:func:`~pipeline.transcode.playable.plan_access`): an
original a browser already plays is stream-copied, anything else encoded. A stream copy that ffmpeg
cannot make or that fails verification is not the end: the copy is then encoded, and the plan says
why. The plan is returned with the derivative, for the catalog and the custody log.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.metadata.facts import MediaInfo
from pipeline.stage.tools import tool_version
from pipeline.transcode.commands import FFMPEG, build_command, contact_sheet_layout
from pipeline.transcode.errors import TranscodeError, TranscodeTimeoutError
from pipeline.transcode.playable import RE_ENCODE, AccessPlan, plan_access
from pipeline.transcode.profiles import Profile
from pipeline.transcode.runner import TranscodeRun, run_transcode
from pipeline.transcode.sheet import find_font, label_contact_sheet, with_counted_frames
from pipeline.transcode.verify import Verification, verify_derivative

# The default font argument, "find one"; None means "there is none, label with Pillow".
_AUTO = Path()


@dataclass(frozen=True)
class Derivative:
    profile: str  # name@version
    tool: str  # the ffmpeg that made it, e.g. "ffmpeg 5.1.6-0+deb12u1", for the custody record
    path: Path | None  # where it is; None when it failed verification and was removed
    run: TranscodeRun
    verification: Verification
    plan: AccessPlan | None = None  # video access copies: remuxed or re-encoded, and why

    @property
    def ok(self) -> bool:
        return self.verification.ok


def make_derivative(
    profile: Profile,
    media: MediaInfo,
    source: Path,
    dest: Path,
    *,
    timeout: float,
    on_progress: Callable[[float], None] | None = None,
    font: Path | None = _AUTO,
    ffmpeg_path: str = FFMPEG,
) -> Derivative:
    """Make ``dest`` from ``source`` with ``profile`` and verify it.

    ``timeout`` bounds the ffmpeg run and each verification step. Raises :class:`TranscodeError`
    when ffmpeg fails, times out or writes nothing; a derivative that was made but fails
    verification is removed and returned with ``path=None`` and the reason in ``verification``.
    """
    tool = tool_version(ffmpeg_path) or f"{ffmpeg_path} (version unknown)"
    if profile.kind != "video-access":
        return _make(profile, media, source, dest, tool, None, timeout, on_progress, font, ffmpeg_path)
    plan = plan_access(profile, source, timeout=timeout)
    if plan.remux:
        try:
            made = _make(profile, media, source, dest, tool, plan, timeout, on_progress, font, ffmpeg_path)
        except TranscodeTimeoutError:
            raise  # an encoding would take longer still
        except TranscodeError as exc:
            failed = exc.reason
        else:
            if made.ok:
                return made
            failed = f"its verification failed: {made.verification.reason}"
        plan = AccessPlan(RE_ENCODE, f"a stream copy was tried ({plan.why}) but {failed}")
    return _make(profile, media, source, dest, tool, plan, timeout, on_progress, font, ffmpeg_path)


def _make(
    profile: Profile,
    media: MediaInfo,
    source: Path,
    dest: Path,
    tool: str,
    plan: AccessPlan | None,
    timeout: float,
    on_progress: Callable[[float], None] | None,
    font: Path | None,
    ffmpeg_path: str,
) -> Derivative:
    remux = plan is not None and plan.remux
    if profile.kind == "contact-sheet":
        # The command, the labels and the verification all lay the sheet out from this one probe.
        media = with_counted_frames(media, source, timeout=timeout)
        if font is _AUTO:
            font = find_font()
    partial = dest.with_name(f".{dest.name}.partial")
    argv = build_command(profile, media, source, partial, font=font, remux=remux, ffmpeg_path=ffmpeg_path)
    try:
        run = run_transcode(
            argv, duration=media.duration, timeout=timeout, on_progress=on_progress, profile=profile.name
        )
        if not partial.is_file() or partial.stat().st_size == 0:
            # ffmpeg ends well when its input gave it nothing to encode (no frame decodes, an edit
            # list that shows nothing): its last lines say so.
            raise TranscodeError(
                profile.name,
                run.returncode,
                run.stderr_tail,
                reason="ffmpeg wrote nothing: the original gave it nothing to use",
            )
        if profile.kind == "contact-sheet" and font is None:
            label_contact_sheet(partial, contact_sheet_layout(profile, media))
        verification = verify_derivative(
            profile,
            media,
            source,
            partial,
            timeout=timeout,
            ffmpeg_path=ffmpeg_path,
            same_packets=remux and plan is not None and plan.same_packets,
        )
    except TranscodeError:
        _remove(partial)
        raise
    except OSError as exc:
        _remove(partial)
        raise TranscodeError(profile.name, None, reason=f"the derivative could not be finished: {exc}") from exc
    if not verification.ok:
        _remove(partial)
        return Derivative(profile.label, tool, None, run, verification, plan)
    os.replace(partial, dest)
    return Derivative(profile.label, tool, dest, run, verification, plan)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
