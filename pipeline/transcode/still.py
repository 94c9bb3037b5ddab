"""Access images of photos made in-process with Pillow: turned upright, scaled down, written as JPEG
and verified by decoding what was written, without starting a program per photo.

Starting ffmpeg to scale a photo, again to decode the result and ffprobe to measure it costs far
more than the work itself for the small pictures cameras and phones take; Pillow reads, scales and
writes a photo in a few milliseconds. A picture Pillow does not read (HEIF, camera raw, a format it
lacks a decoder for), one in a pixel mode it cannot turn into 8-bit colour or grey (16-bit, float),
one larger than Pillow decodes without a warning (``Image.MAX_IMAGE_PIXELS``, about 89 megapixels)
and one that does not decode cleanly are left to ffmpeg, as before (:func:`make_access_image`
returns ``None``).

- **Upright.** The EXIF orientation is applied (the picture is turned or mirrored as the camera
  said it was held), and the copy carries no EXIF, so no viewer turns it a second time.
- **Never larger than the original**, and no side longer than the profile's ``max_dimension``,
  keeping the aspect ratio.
- **Quality.** The profile's ``quality`` is ffmpeg's JPEG qscale (2-31, lower is better). ffmpeg's
  MJPEG encoder at qscale q quantizes about as finely as libjpeg at quality 100 - 3q (its tables
  read back from its files: qscale 2, 3, 6 and 10 match qualities 94, 91, 82 and 69), so that is
  the quality Pillow is given (:func:`jpeg_quality`).
- **Verified** by decoding the whole copy: a JPEG of the size the original's upright picture scaled
  to the limit gives, with no decoding error.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.transcode.profiles import Profile

PROGRAM = "Pillow"
# Pixel modes turned into 8-bit RGB or kept as 8-bit grey; anything else (16-bit, float) goes to ffmpeg.
_COLOUR = frozenset(["RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LA", "1"])
_GREY = frozenset(["L"])
# EXIF orientations 5 to 8 turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = frozenset([5, 6, 7, 8])
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class StillCopy:
    """An access image made in-process: what it was made from and what the check found."""

    tool: str  # e.g. "Pillow 11.0.0", for the custody record
    elapsed: float  # seconds
    size: tuple[int, int]  # the copy's width and height
    orientation: int  # the EXIF orientation applied (1: none)
    problems: tuple[str, ...]  # what the check of the copy found wrong; empty when it is good

    @property
    def ok(self) -> bool:
        return not self.problems


def jpeg_quality(qscale: int) -> int:
    """The libjpeg quality that quantizes about as finely as ffmpeg's MJPEG encoder at ``qscale``."""
    return max(1, min(95, 100 - 3 * qscale))


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The picture's width and height as shown, after its EXIF ``orientation`` is applied."""
    width, height = size
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def fits(size: tuple[int, int], upright: tuple[int, int], limit: int) -> bool:
    """Whether ``size`` is the ``upright`` picture scaled down to fit ``limit`` (or kept as it is when
    it fits): the same longer side, as long as allowed, the other side in proportion to a pixel."""
    width, height = upright
    scale = min(1.0, limit / max(width, height))
    return abs(size[0] - width * scale) <= 1 and abs(size[1] - height * scale) <= 1 and max(size) <= limit


def make_access_image(profile: Profile, source: Path, dest: Path) -> StillCopy | None:
    """Write the access image of the photo ``source`` to ``dest`` and check it.

    Returns ``None`` (and writes nothing) when the picture is for ffmpeg rather than Pillow,
    including a photo that does not decode cleanly (truncated or corrupt): ffmpeg makes what it can
    of it, and says what it found. Raises :class:`OSError` when ``dest`` cannot be written.
    """
    try:
        import PIL
        from PIL import Image, ImageOps
    except ImportError:
        return None
    started = time.monotonic()
    limit = int(profile["max_dimension"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(source)
    except (OSError, Image.DecompressionBombError, Image.DecompressionBombWarning, ValueError):
        return None  # not a picture Pillow reads, or too large for it: ffmpeg's
    with opened:
        width, height = opened.size
        if opened.mode not in _COLOUR | _GREY or width < 1 or height < 1:
            return None
        orientation = _orientation(opened)
        upright = upright_size(opened.size, orientation)
        icc = opened.info.get("icc_profile")  # colours as the camera meant them (Display P3 and the like)
        try:
            picture = _upright_and_scaled(opened, orientation, limit, Image, ImageOps)
        except (OSError, SyntaxError, ValueError):  # PIL reports some broken headers as SyntaxError
            return None  # a damaged photo: ffmpeg makes what it can of it, as before
    options: dict[str, Any] = {"quality": jpeg_quality(int(profile["quality"]))}
    if isinstance(icc, bytes) and icc:
        options["icc_profile"] = icc
    picture.save(dest, format="JPEG", **options)
    size, problems = check_access_image(dest, upright, limit)
    tool = f"{PROGRAM} {getattr(PIL, '__version__', 'version unknown')}"
    return StillCopy(tool, round(time.monotonic() - started, 3), size, orientation, tuple(problems))


def check_access_image(path: Path, upright: tuple[int, int], limit: int) -> tuple[tuple[int, int], list[str]]:
    """Decode the whole JPEG at ``path``: its size and what is wrong with it (nothing when it is a
    clean JPEG of the original's ``upright`` picture scaled to fit ``limit``)."""
    from PIL import Image

    try:
        with Image.open(path) as written:
            fmt, size = written.format, written.size
            written.load()  # decodes every block; a truncated or corrupt copy raises
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return (0, 0), [f"it does not decode cleanly: {exc}"]
    problems: list[str] = []
    if fmt != "JPEG":
        problems.append(f"it is {fmt or 'not a known format'}, not JPEG")
    if max(size) > limit:
        problems.append(f"it is {size[0]}x{size[1]}, larger than the profile's {limit} pixels")
    elif not fits(size, upright, limit):
        problems.append(
            f"it is {size[0]}x{size[1]}, not the original's upright {upright[0]}x{upright[1]} picture "
            f"scaled to fit {limit} pixels"
        )
    return size, problems


def _orientation(picture: Any) -> int:
    with contextlib.suppress(Exception):  # an unreadable EXIF block is no orientation at all
        value = picture.getexif().get(_ORIENTATION)
        if isinstance(value, int) and 1 <= value <= 8:
            return value
    return 1


def _upright_and_scaled(opened: Any, orientation: int, limit: int, image: Any, image_ops: Any) -> Any:
    """The picture decoded, scaled to fit ``limit`` (a JPEG far larger is decoded at a reduced scale
    first, for a fraction of the work), turned upright and in a mode JPEG holds; a new image, not
    ``opened``, which is closed after."""
    if max(opened.size) > limit:
        opened.thumbnail((limit, limit), image.Resampling.LANCZOS)  # a square box: the same upright or not
    else:
        opened.load()
    picture = image_ops.exif_transpose(opened) if orientation != 1 else opened
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        picture = picture.convert("RGBA").convert("RGB")
    elif picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    return picture.copy() if picture is opened else picture
