"""Names that every disc file system and every reader's operating system accept.

One readable name per file serves Joliet (what Windows shows without UDF), Rock Ridge (Linux) and UDF
(what current systems prefer): Unicode NFC, at most 64 UTF-16 units (Joliet's limit), no characters
Windows refuses, no reserved device names, unique within its folder ignoring case. ISO 9660 itself
gets plain ``D-characters`` names, which only very old readers ever show.
"""

from __future__ import annotations

import re
import unicodedata

JOLIET_MAX = 64  # UTF-16 code units per name (pycdlib refuses more)
ISO_STEM_MAX = 20
ISO_EXT_MAX = 8
LABEL_MAX = 16  # the Joliet volume identifier holds 16 characters

_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{n}" for n in range(1, 10)} | {f"LPT{n}" for n in range(1, 10)}
_NOT_D_CHARACTER = re.compile(r"[^A-Z0-9_]")


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


def _fit(stem: str, ext: str, limit: int = JOLIET_MAX) -> str:
    if _utf16_units(ext) > limit // 2:
        ext = ""
    while stem and _utf16_units(stem + ext) > limit:
        stem = stem[:-1]
    return (stem.rstrip(" .") or "item") + ext


def safe_name(name: str) -> str:
    """A name for the disc that keeps as much of ``name`` as every file system allows."""
    text = unicodedata.normalize("NFC", name)
    text = _FORBIDDEN.sub("_", text).replace("%", "\uff05")  # bagit-python reads "%25" in manifests literally
    text = "".join(ch if ord(ch) <= 0xFFFF and unicodedata.category(ch) != "Cs" else "_" for ch in text)
    text = text.strip().rstrip(". ").lstrip(".").strip()
    stem, ext = _split(text or "item")
    if stem.split(".")[0].strip().upper() in _RESERVED:
        stem = "_" + stem
    return _fit(stem, ext)


class FolderNames:
    """Hands out safe names unique within one folder, case and Unicode form ignored."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str) -> str:
        stem, ext = _split(safe_name(name))
        candidate = _fit(stem, ext)
        number = 2
        while candidate.casefold() in self._taken:
            suffix = f" ({number}){ext}"
            candidate = _fit(stem, "", JOLIET_MAX - _utf16_units(suffix)) + suffix
            number += 1
        self._taken.add(candidate.casefold())
        return candidate


class IsoNames:
    """ISO 9660 level 3 names (``STEM.EXT``, upper-case D-characters), unique within one folder."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, name: str, *, directory: bool = False) -> str:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").upper()
        stem, ext = (ascii_name, "") if directory else _split(ascii_name)
        stem = _NOT_D_CHARACTER.sub("_", stem)[:ISO_STEM_MAX].strip("_")
        ext = _NOT_D_CHARACTER.sub("_", ext.lstrip("."))[:ISO_EXT_MAX]
        number = len(self._taken) + 1
        candidate = stem or f"F{number:05d}"
        while self._key(candidate, ext) in self._taken:
            candidate = f"{stem[: ISO_STEM_MAX - 6]}_{number:05d}" if stem else f"F{number:05d}"
            number += 1
        self._taken.add(self._key(candidate, ext))
        return candidate if directory else f"{candidate}.{ext}" if ext else candidate

    @staticmethod
    def _key(stem: str, ext: str) -> str:
        return f"{stem}.{ext}"


def volume_label(case_number: str, disc_index: int, disc_count: int) -> str:
    """The volume label: the case number's letters and digits (Chinese case numbers keep their
    digits), with the disc's number when the package spans several."""
    ascii_part = unicodedata.normalize("NFKD", case_number).encode("ascii", "ignore").decode("ascii").upper()
    text = _NOT_D_CHARACTER.sub("_", ascii_part)
    text = re.sub("_+", "_", text).strip("_") or "EVIDENCE"
    suffix = f"_{disc_index}" if disc_count > 1 else ""
    return text[: LABEL_MAX - len(suffix)].rstrip("_") + suffix
