"""A first guess at the media kind from the name and the first bytes; the probe stage decides later."""

from __future__ import annotations

VIDEO = frozenset(
    [
        "mp4",
        "m4v",
        "mov",
        "qt",
        "avi",
        "mts",
        "m2ts",
        "ts",
        "mxf",
        "dv",
        "mkv",
        "webm",
        "mpg",
        "mpeg",
        "vob",
        "wmv",
        "flv",
        "3gp",
        "asf",
        "h264",
        "h265",
        "264",
        "265",
    ]
)
AUDIO = frozenset(["wav", "bwf", "mp3", "flac", "aac", "m4a", "ogg", "opus", "wma", "amr", "aif", "aiff"])
IMAGE = frozenset(["jpg", "jpeg", "heic", "heif", "png", "tif", "tiff", "dng", "webp", "bmp", "gif"])

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "video"),  # ISO BMFF (MP4/MOV/HEIC refined by brand below)
    (0, b"\x1a\x45\xdf\xa3", "video"),  # Matroska / WebM
    (0, b"\x06\x0e\x2b\x34", "video"),  # MXF
    (0, b"\xff\xd8\xff", "image"),  # JPEG
    (0, b"\x89PNG", "image"),
    (0, b"ID3", "audio"),
    (0, b"fLaC", "audio"),
    (0, b"OggS", "audio"),
)
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif")


def guess_kind(name: str, head: bytes) -> str:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    for kind, suffixes in (("video", VIDEO), ("audio", AUDIO), ("image", IMAGE)):
        if suffix in suffixes:
            return kind
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "audio", b"AVI ": "video"}.get(head[8:12], "other")
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if magic == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
                return "image"
            return kind
    return "other"
