"""Making one derivative of an original: build the command, run it, finish it, verify it.

The original is only ever read. The derivative is written under a temporary name beside ``dest``
and takes its final name only once it has been verified, so a reader never sees a half-written or
unverified file under a derivative's name; a failed one is removed and the failure returned (or
raised, when ffmpeg itself failed) with ffmpeg's own words.

A photo's access image is made in-process with Pillow (:mod:`pipeline.transcode.still`) when
Pillow reads the photo, and by ffmpeg otherwise.

A video access copy is first planned (:func:`~pipeline.transcode.playable.plan_access`): an
original a browser already plays is stream-copied, anything else encoded. A stream copy that ffmpeg
cannot make or that fails verification is not the end: the copy is then encoded, and the plan says
why. The plan is returned with the derivative, for the catalog and the custody log.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.metadata.facts import MediaInfo
from pipeline.stage.tools import tool_version
from pipeline.transcode.commands import FFMPEG, build_command, contact_sheet_layout, picture_outputs
from pipeline.transcode.errors import TranscodeError, TranscodeTimeoutError
from pipeline.transcode.playable import RE_ENCODE, AccessPlan, plan_access
from pipeline.transcode.profiles import Profile
from pipeline.transcode.runner import TranscodeRun, run_transcode
from pipeline.transcode.sheet import find_font, label_contact_sheet, with_counted_frames
from pipeline.transcode.still import PROGRAM, make_access_image
from pipeline.transcode.verify import DECODE_CHECK, Verification, verify_derivative, verify_picture

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
    # A stream copy's posters and contact sheets, made and verified in the decoding that verified it.
    pictures: tuple[Derivative, ...] = ()

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
    pictures: Sequence[tuple[Profile, Path]] = (),
) -> Derivative:
    """Make ``dest`` from ``source`` with ``profile`` and verify it.

    ``timeout`` bounds the ffmpeg run and each verification step. Raises :class:`TranscodeError`
    when ffmpeg fails, times out or writes nothing; a derivative that was made but fails
    verification is removed and returned with ``path=None`` and the reason in ``verification``.

    ``pictures`` (poster and contact-sheet profiles with their destinations) are asked of a video
    access copy: when it is a stream copy, they are made from the frames its verification decodes
    (the same frames as the original's, since its packets are checked to be the same), and those
    made and verified are returned in ``pictures``; the others are the caller's to make.
    """
    if profile.kind == "image-access" and (made := _still(profile, source, dest)) is not None:
        return made
    tool = tool_version(ffmpeg_path) or f"{ffmpeg_path} (version unknown)"
    if profile.kind != "video-access":
        return _make(profile, media, source, dest, tool, None, timeout, on_progress, font, ffmpeg_path)
    plan = plan_access(profile, source, timeout=timeout)
    if plan.remux:
        try:
            made = _make(profile, media, source, dest, tool, plan, timeout, on_progress, font, ffmpeg_path, pictures)
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


def _still(profile: Profile, source: Path, dest: Path) -> Derivative | None:
    """A photo's access image made in-process (:mod:`pipeline.transcode.still`), or ``None`` when the
    photo is for ffmpeg."""
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        made = make_access_image(profile, source, partial)
    except OSError as exc:
        _remove(partial)
        raise TranscodeError(profile.name, None, reason=f"the derivative could not be finished: {exc}") from exc
    if made is None:
        _remove(partial)
        return None
    details: dict[str, Any] = {"size": list(made.size), "orientation": made.orientation}
    verification = Verification(made.ok, DECODE_CHECK, details, "; ".join(made.problems) or None)
    run = TranscodeRun((PROGRAM, str(source), str(dest)), 0, made.elapsed, ())
    if not made.ok:
        _remove(partial)
        return Derivative(profile.label, made.tool, None, run, verification)
    os.replace(partial, dest)
    return Derivative(profile.label, made.tool, dest, run, verification)


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
    pictures: Sequence[tuple[Profile, Path]] = (),
) -> Derivative:
    remux = plan is not None and plan.remux
    same_packets = remux and plan is not None and plan.same_packets
    along: _Pictures | None = None
    if same_packets and pictures:
        along = _Pictures.plan(pictures, media, source, dest, timeout=timeout, font=font)
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
        started = time.monotonic()
        verification = verify_derivative(
            profile,
            media,
            source,
            partial,
            timeout=timeout,
            ffmpeg_path=ffmpeg_path,
            same_packets=same_packets,
            pictures=along.args if along else (),
        )
        made = along.finish(tool, time.monotonic() - started) if along and verification.ok else ()
    except TranscodeError:
        _remove(partial)
        raise
    except OSError as exc:
        _remove(partial)
        raise TranscodeError(profile.name, None, reason=f"the derivative could not be finished: {exc}") from exc
    finally:
        if along:
            along.discard()
    if not verification.ok:
        _remove(partial)
        return Derivative(profile.label, tool, None, run, verification, plan)
    os.replace(partial, dest)
    return Derivative(profile.label, tool, dest, run, verification, plan, made)


@dataclass(frozen=True)
class _Pictures:
    """Posters and contact sheets made in the decoding that verifies a stream copy: where each is
    written until it is verified, and the ffmpeg outputs that write them."""

    wanted: tuple[tuple[Profile, Path, Path], ...]  # profile, destination, partial file
    media: MediaInfo  # the original's probe, its frames counted where a contact sheet needs them
    font: Path | None
    args: tuple[str, ...]

    @classmethod
    def plan(
        cls,
        pictures: Sequence[tuple[Profile, Path]],
        media: MediaInfo,
        source: Path,
        copy: Path,
        *,
        timeout: float,
        font: Path | None,
    ) -> _Pictures | None:
        wanted = tuple(
            (profile, dest, copy.with_name(f".{copy.name}.{number}.{profile.extension}.partial"))
            for number, (profile, dest) in enumerate(pictures)
            if profile.kind in ("poster", "contact-sheet")
        )
        if not wanted or not media.of_kind("video"):
            return None
        if any(profile.kind == "contact-sheet" for profile, _, _ in wanted):
            media = with_counted_frames(media, source, timeout=timeout)
            if font is _AUTO:
                font = find_font()
        try:
            args = picture_outputs([(profile, partial) for profile, _, partial in wanted], media, copy, font=font)
        except TranscodeError:
            return None  # the pictures are then made on their own, and say what is wrong
        return cls(wanted, media, font, tuple(args))

    def finish(self, tool: str, elapsed: float) -> tuple[Derivative, ...]:
        """The pictures that were written and pass their checks, under their final names."""
        run = TranscodeRun((FFMPEG, *self.args), 0, round(elapsed, 3), ())
        made: list[Derivative] = []
        for profile, dest, partial in self.wanted:
            if not partial.is_file() or partial.stat().st_size == 0:
                continue
            if profile.kind == "contact-sheet" and self.font is None:
                label_contact_sheet(partial, contact_sheet_layout(profile, self.media))
            verification = verify_picture(profile, self.media, partial)
            if verification.ok:
                os.replace(partial, dest)
                made.append(Derivative(profile.label, tool, dest, run, verification))
        return tuple(made)

    def discard(self) -> None:
        for _, _, partial in self.wanted:
            _remove(partial)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
