"""Timestamp labels on contact sheets, with or without a font for ffmpeg.

ffmpeg's ``drawtext`` filter needs a font file. On Debian one is nearly always there (fontconfig,
which ffmpeg depends on, pulls in DejaVu or another font), and :func:`find_font` finds it through
``fc-match`` or the usual font folders. When there is none, the sheet is made unlabelled and
:func:`label_contact_sheet` writes the labels with Pillow's built-in bitmap font, which needs no
font file at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.metadata.tools import ToolError, run_tool
from pipeline.transcode.commands import ContactSheetLayout, timestamp_label
from pipeline.transcode.errors import TranscodeError

FONT_FOLDERS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
_PREFERRED = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")
_FONT_TIMEOUT = 10.0
_PADDING = 2  # pixels between cells: the tile filter's padding in commands.py


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
    """Write each cell's timestamp into the unlabelled contact sheet at ``path``, in place."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise TranscodeError(
            "contact-sheet",
            None,
            reason="no font for ffmpeg's drawtext was found and Pillow is not installed to label the sheet",
        ) from exc
    with Image.open(path) as opened:
        sheet = opened.convert("RGB")
    cell_width = (sheet.width - _PADDING * (layout.columns - 1)) // layout.columns
    cell_height = (sheet.height - _PADDING * (layout.rows - 1)) // layout.rows
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for number, at in enumerate(layout.times):
        row, column = divmod(number, layout.columns)
        left = column * (cell_width + _PADDING)
        bottom = row * (cell_height + _PADDING) + cell_height
        text = timestamp_label(at)
        box = draw.textbbox((0, 0), text, font=font)
        x, y = left + 4, bottom - (box[3] - box[1]) - 8
        draw.rectangle((x - 3, y - 3, x + box[2] + 3, y + box[3] + 3), fill=(0, 0, 0))
        draw.text((x, y), text, fill=(255, 255, 255), font=font)
    sheet.save(path, format="JPEG", quality=quality)
