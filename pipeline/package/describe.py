"""The files at a disc's root that describe it: the written description (text and HTML) naming its
producer and production time, the machine-readable manifests, and the BagIt tag files that let any
BagIt validator check the disc.

Everything here is a pure function of the disc's facts and the files' known sizes and digests; the
image builder writes what these return.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from pipeline.package.contents import AccessCopy, DiscFile, DiscInfo, ItemEntry

BAGIT_TXT = "bagit.txt"
BAG_INFO_TXT = "bag-info.txt"
PAYLOAD_MANIFEST = "manifest-sha256.txt"
TAG_MANIFEST = "tagmanifest-sha256.txt"
DESCRIPTION_TXT = "DESCRIPTION.txt"
DESCRIPTION_HTML = "DESCRIPTION.html"
MANIFEST_JSON = "MANIFEST.json"
MANIFEST_SHA256 = "MANIFEST.sha256"
PAYLOAD_DIR = "data/"

MANIFEST_FORMAT = "evidence-disc-manifest"
MANIFEST_VERSION = 1

NOT_RECORDED = "未记录 / not recorded"
UNKNOWN_TARGET = "未知 / not recorded"
NONE = "无 / none"

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_BOM = "\ufeff"


# ----------------------------------------------------------------------------------------- checks
def _path_problem(path: str) -> str | None:
    """Why ``path`` cannot be listed in a manifest read by ``sha256sum -c``, or ``None``."""
    if not path:
        return "is empty"
    if path.startswith("/"):
        return "is absolute"
    if "\\" in path:
        return "contains a backslash"
    if "\n" in path or "\r" in path:
        return "contains a line break"
    if "\x00" in path:
        return "contains a NUL character"
    if ".." in path.split("/"):
        return "contains a '..' segment"
    return None


def _check_path(path: str, *, allow_line_breaks: bool = False) -> None:
    problem = _path_problem(path.replace("\n", " ").replace("\r", " ") if allow_line_breaks else path)
    if problem is not None:
        raise ValueError(f"refusing path {path!r}: it {problem}")


def _check_digest(path: str, digest: str) -> str:
    if not _HEX64.fullmatch(digest):
        raise ValueError(f"refusing path {path!r}: its sha256 {digest!r} is not 64 hexadecimal digits")
    return digest.lower()


def _unique(paths: Iterable[str]) -> None:
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            raise ValueError(f"refusing path {path!r}: it is listed twice")
        seen.add(path)


def _check_payload(disc: DiscInfo, payload: Sequence[DiscFile]) -> None:
    """The payload is under ``data/`` and holds every file the description names, with the same
    size and digest, so the description never states something the disc does not carry."""
    if not 1 <= disc.disc_index <= disc.disc_count:
        raise ValueError(f"disc {disc.disc_index} of {disc.disc_count} is not a disc of the set")
    _unique(f.disc_path for f in payload)
    by_path = {f.disc_path: f for f in payload}
    for file in payload:
        _check_path(file.disc_path)
        if not file.disc_path.startswith(PAYLOAD_DIR):
            raise ValueError(f"refusing path {file.disc_path!r}: payload files belong under {PAYLOAD_DIR}")
    described: list[tuple[str, int, str]] = []
    for item in disc.items:
        described.append((item.disc_path, item.size, item.sha256))
        described.extend((copy.disc_path, copy.size, copy.sha256) for copy in item.access_copies)
    for path, size, sha256 in described:
        found = by_path.get(path)
        if found is None:
            raise ValueError(f"{path!r} is described but not in the payload")
        if found.size != size or found.sha256.lower() != sha256.lower():
            raise ValueError(
                f"{path!r} is described with size {size} and sha256 {sha256}, "
                f"but the payload file has size {found.size} and sha256 {found.sha256}"
            )


# ----------------------------------------------------------------------------------------- values
def _one_line(value: str) -> str:
    """``value`` with line breaks and other control characters turned into spaces, so a stored
    value can never add lines of its own to a description or a tag file."""
    return "".join(" " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch for ch in value).strip()


def _fact(value: str | None, missing: str = NOT_RECORDED) -> str:
    if value is None or not value.strip():
        return missing
    return _one_line(value)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _zone_name(zone: ZoneInfo) -> str:
    return zone.key or "local"


def _offset(local: datetime) -> str:
    offset = local.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _local_text(moment: datetime, zone: ZoneInfo) -> str:
    local = _utc(moment).astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M:%S} {_zone_name(zone)} ({_offset(local)})"


def _utc_text(moment: datetime) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M:%S} UTC"


def _when_text(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return NOT_RECORDED
    return f"{_local_text(moment, zone)} / {_utc_text(moment)}"


def _when_json(moment: datetime, zone: ZoneInfo) -> dict[str, str]:
    utc = _utc(moment)
    return {
        "utc": utc.isoformat().replace("+00:00", "Z"),
        "local": utc.astimezone(zone).isoformat(),
        "zone": _zone_name(zone),
    }


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _size_text(size: int) -> str:
    return f"{size:,} 字节 bytes ({_human_size(size)})"


def _disc_count_text(disc: DiscInfo) -> str:
    return f"第 {disc.disc_index} 张，共 {disc.disc_count} 张 / disc {disc.disc_index} of {disc.disc_count}"


def _originals_size(disc: DiscInfo) -> int:
    return sum(item.size for item in disc.items)


def _copies_size(disc: DiscInfo) -> int:
    return sum(copy.size for item in disc.items for copy in item.access_copies)


# ------------------------------------------------------------------------------------ description
TITLE = "电子证据光盘说明 / Evidence disc description"

# Each class as the description names it; a class not listed here is written as it is.
CLASS_NAMES = {
    "unclassified": "未定级 unclassified",
    "none": "无 none",
    "privacy": "个人隐私 privacy",
    "trade-secret": "商业秘密 trade secret",
    "state-secret": "国家秘密 state secret",
}
UNRESTRICTED = ("unclassified", "none")


def _class_text(classification: str) -> str:
    return CLASS_NAMES.get(classification, _one_line(classification))


def classified_notice(disc: DiscInfo) -> str | None:
    """The line at the top of a disc holding any record above ``none``, naming those classes (the
    strictest first), or None."""
    order = list(CLASS_NAMES)
    found = sorted(
        {item.classification for item in disc.items} - set(UNRESTRICTED),
        key=lambda c: order.index(c) if c in order else len(order),
        reverse=True,
    )
    if not found:
        return None
    chinese = "、".join(_class_text(c).split(" ", 1)[0] for c in found)
    english = ", ".join(_class_text(c).split(" ", 1)[-1] for c in found)
    return (
        f"本光盘含有涉密/敏感记录：{chinese}，须按规定保管和调阅。  "
        f"This disc holds classified records: {english}; keep it and retrieve from it as the rules require."
    )


_CHECKING = (
    (
        "核验方法：在 Linux 上进入本光盘根目录，执行 sha256sum -c MANIFEST.sha256，每个文件都应显示“OK”（确定）。"
        "本光盘同时是一个 BagIt 包（RFC 8493），任何 BagIt 校验工具都可以对其进行校验。"
        "在 Windows 上可用 certutil -hashfile 文件名 SHA256 逐个核对文件的 SHA-256 值。"
    ),
    (
        "How to check this disc: on Linux, in the disc's root folder, run sha256sum -c MANIFEST.sha256; "
        "every file should report OK. The disc is also a BagIt bag (RFC 8493), so any BagIt validator can "
        "validate it. On Windows, certutil -hashfile <file> SHA256 shows one file's SHA-256 to compare."
    ),
    (
        "data/originals/ 中的文件是从证据库取出的原始文件，未经任何改动；"
        "data/access/ 中的文件是为方便播放而制作的查看副本，不是原始证据。"
    ),
    (
        "The files under data/originals/ are the originals from the evidence store, unaltered. "
        "The files under data/access/ are copies made for viewing; they are not the original evidence."
    ),
)


def _disc_rows(disc: DiscInfo) -> list[tuple[str, str]]:
    rows = [
        ("案件编号 Case number", _fact(disc.case_number)),
        ("执法对象 Enforcement target", _fact(disc.target, UNKNOWN_TARGET)),
        ("制作人 Producer", _fact(disc.producer)),
        ("制作时间 Production time", _when_text(disc.produced_at, disc.zone)),
        ("光盘 Disc", _disc_count_text(disc)),
        ("卷标 Volume label", _fact(disc.label)),
        ("介质 Media", _fact(disc.media)),
        ("归档包编号 Package", _fact(disc.package_id)),
        ("证据数量 Items", str(len(disc.items))),
        ("原始文件总大小 Total size of originals", _size_text(_originals_size(disc))),
    ]
    if _copies_size(disc):
        rows.append(("查看副本总大小 Total size of viewing copies", _size_text(_copies_size(disc))))
    return rows


def _item_rows(item: ItemEntry, zone: ZoneInfo) -> list[tuple[str, str]]:
    return [
        ("光盘上的文件 File on disc", _one_line(item.disc_path)),
        ("原始文件名 Original name", _fact(item.original_name)),
        ("证据编号 Item id", _fact(item.item_id)),
        ("类型 Media kind", _fact(item.media_kind)),
        ("案件编号 Case number", _fact(item.case_number)),
        ("采集时间 Capture time", _when_text(item.captured_at, zone)),
        ("采集地点 Place", _fact(item.captured_place)),
        ("采集人 Collector", _fact(item.collector)),
        ("证明对象 Proof object", _fact(item.proof_object)),
        ("密级 Class", _class_text(item.classification)),
        ("大小 Size", _size_text(item.size)),
        ("SHA-256", item.sha256.lower()),
    ]


def _copy_text(copy: AccessCopy) -> str:
    return (
        f"{_one_line(copy.disc_path)}（格式 profile: {_fact(copy.profile)}；"
        f"大小 size: {_size_text(copy.size)}；SHA-256: {copy.sha256.lower()}）"
    )


def _item_heading(number: int) -> str:
    return f"证据 {number} / Item {number}"


COPIES_LABEL = "查看副本 Access copies"


def description_text(disc: DiscInfo) -> bytes:
    """The written description as plain text: UTF-8 with a byte-order mark (so Windows Notepad shows
    the Chinese) and CRLF line ends; every label in Chinese first, English second."""
    lines = [TITLE, "=" * 44, ""]
    notice = classified_notice(disc)
    if notice:
        lines += [notice, ""]
    lines += [f"{label}: {value}" for label, value in _disc_rows(disc)]
    for number, item in enumerate(disc.items, start=1):
        lines += ["", _item_heading(number), "-" * 24]
        lines += [f"{label}: {value}" for label, value in _item_rows(item, disc.zone)]
        if item.access_copies:
            lines.append(f"{COPIES_LABEL}:")
            lines += [f"  - {_copy_text(copy)}" for copy in item.access_copies]
        else:
            lines.append(f"{COPIES_LABEL}: {NONE}")
    lines += ["", "核验 / Checking", "-" * 24]
    for paragraph in _CHECKING:
        lines += [paragraph, ""]
    return (_BOM + "\r\n".join(lines)).encode("utf-8")


_CSS = """
body { font-family: "Microsoft YaHei", "PingFang SC", "Noto Sans CJK SC", sans-serif; margin: 2em; color: #111; }
h1 { font-size: 1.5em; border-bottom: 2px solid #333; padding-bottom: .3em; }
h2 { font-size: 1.2em; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; }
th, td { border: 1px solid #999; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #eee; width: 16em; font-weight: normal; }
.hash { font-family: "Consolas", "DejaVu Sans Mono", monospace; word-break: break-all; }
ul { margin: 0; padding-left: 1.2em; }
.classified { font-weight: bold; border: 2px solid #900; padding: .5em; }
p { line-height: 1.6; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; } table { page-break-inside: avoid; } }
""".strip()


def _table(rows: Sequence[tuple[str, str]], *, hashes: Sequence[str] = (), extra: Sequence[str] = ()) -> list[str]:
    """A two-column table of escaped labels and values; ``extra`` rows are already HTML."""
    out = ["<table>"]
    for label, value in rows:
        cls = ' class="hash"' if label in hashes else ""
        out.append(f"<tr><th>{html.escape(label)}</th><td{cls}>{html.escape(value)}</td></tr>")
    return [*out, *extra, "</table>"]


def _copies_row(item: ItemEntry) -> str:
    if not item.access_copies:
        return f"<tr><th>{html.escape(COPIES_LABEL)}</th><td>{html.escape(NONE)}</td></tr>"
    entries = "".join(f'<li class="hash">{html.escape(_copy_text(copy))}</li>' for copy in item.access_copies)
    return f"<tr><th>{html.escape(COPIES_LABEL)}</th><td><ul>{entries}</ul></td></tr>"


def description_html(disc: DiscInfo) -> str:
    """The written description as a self-contained HTML page (inline CSS, no external resources),
    a table per item, every stored value escaped."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(TITLE)} — {html.escape(_fact(disc.case_number))}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(TITLE)}</h1>",
    ]
    notice = classified_notice(disc)
    if notice:
        out.append(f'<p class="classified">{html.escape(notice)}</p>')
    out += _table(_disc_rows(disc))
    for number, item in enumerate(disc.items, start=1):
        out.append(f"<h2>{html.escape(_item_heading(number))}</h2>")
        out += _table(_item_rows(item, disc.zone), hashes=("SHA-256",), extra=[_copies_row(item)])
    out.append("<h2>核验 / Checking</h2>")
    out += [f"<p>{html.escape(paragraph)}</p>" for paragraph in _CHECKING]
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# -------------------------------------------------------------------------------------- manifests
def sha256_manifest(files: Iterable[tuple[str, str]]) -> bytes:
    """``(path, sha256)`` pairs in the format ``sha256sum -c`` reads, sorted by path. Paths that
    ``sha256sum`` would misread or that point outside the disc are refused with a ``ValueError``
    naming them."""
    entries: list[tuple[str, str]] = []
    for path, sha256 in files:
        _check_path(path)
        entries.append((path, _check_digest(path, sha256)))
    entries.sort()
    _unique(path for path, _ in entries)
    return "".join(f"{sha256}  {path}\n" for path, sha256 in entries).encode("utf-8")


def _manifest_json_item(item: ItemEntry, zone: ZoneInfo) -> dict[str, object]:
    return {
        "item_id": item.item_id,
        "disc_path": item.disc_path,
        "original_name": item.original_name,
        "media_kind": item.media_kind,
        "size": item.size,
        "sha256": item.sha256.lower(),
        "case_number": item.case_number,
        "captured_at": _when_json(item.captured_at, zone) if item.captured_at is not None else None,
        "captured_place": item.captured_place,
        "collector": item.collector,
        "proof_object": item.proof_object,
        "classification": item.classification,
        "access_copies": [
            {"disc_path": c.disc_path, "profile": c.profile, "size": c.size, "sha256": c.sha256.lower()}
            for c in item.access_copies
        ],
    }


def manifest_json(disc: DiscInfo, files: Sequence[DiscFile]) -> bytes:
    """The disc's facts, every item with every recorded fact (``null`` when not recorded), and the
    given files with size and SHA-256, as UTF-8 JSON with sorted keys: the same input gives the same
    bytes."""
    document = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "package_id": disc.package_id,
        "case_number": disc.case_number,
        "target": disc.target,
        "producer": disc.producer,
        "produced_at": _when_json(disc.produced_at, disc.zone),
        "disc": {"index": disc.disc_index, "count": disc.disc_count},
        "label": disc.label,
        "media": disc.media,
        "items": [_manifest_json_item(item, disc.zone) for item in disc.items],
        "files": [
            {"path": f.disc_path, "size": f.size, "sha256": f.sha256.lower()}
            for f in sorted(files, key=lambda f: f.disc_path)
        ],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")


# ------------------------------------------------------------------------------------------ BagIt
def _bagit_path(path: str) -> str:
    """A path as RFC 8493 writes it in a manifest: percent sign, CR and LF percent-encoded."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _bagit_manifest(entries: Iterable[tuple[str, str]]) -> bytes:
    ordered = sorted(entries)
    _unique(path for path, _ in ordered)
    return "".join(f"{sha256}  {_bagit_path(path)}\n" for path, sha256 in ordered).encode("utf-8")


def bagit_txt() -> bytes:
    """The bag declaration, BagIt 1.0 with UTF-8 tag files."""
    return b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def bag_info(disc: DiscInfo, payload: Sequence[DiscFile]) -> bytes:
    """``bag-info.txt``: who made the bag and when, which disc of the set it is, and the
    Payload-Oxum of the ``data/`` files."""
    files = [f for f in payload if f.disc_path.startswith(PAYLOAD_DIR)]
    total = sum(f.size for f in files)
    produced_local = _utc(disc.produced_at).astimezone(disc.zone)
    target = _fact(disc.target, UNKNOWN_TARGET)
    tags = [
        ("Contact-Name", _one_line(disc.producer)),
        (
            "External-Description",
            f"案件编号 Case number: {_one_line(disc.case_number)}；执法对象 Enforcement target: {target}",
        ),
        ("External-Identifier", _one_line(disc.label)),
        ("Internal-Sender-Identifier", _one_line(disc.case_number)),
        ("Bag-Group-Identifier", _one_line(disc.package_id)),
        ("Bag-Count", f"{disc.disc_index} of {disc.disc_count}"),
        ("Bagging-Date", f"{produced_local:%Y-%m-%d}"),
        ("Bag-Size", _human_size(total)),
        ("Payload-Oxum", f"{total}.{len(files)}"),
    ]
    return "".join(f"{name}: {value}\n" for name, value in tags).encode("utf-8")


def payload_manifest(files: Sequence[DiscFile]) -> bytes:
    """``manifest-sha256.txt``: the digest of every ``data/`` file, sorted by path; files elsewhere
    are not payload and are left out."""
    entries = []
    for f in files:
        if not f.disc_path.startswith(PAYLOAD_DIR):
            continue
        _check_path(f.disc_path, allow_line_breaks=True)
        entries.append((f.disc_path, _check_digest(f.disc_path, f.sha256)))
    return _bagit_manifest(entries)


def tag_manifest(tag_files: Sequence[tuple[str, bytes]]) -> bytes:
    """``tagmanifest-sha256.txt``: the digest of each given root tag file's content."""
    entries = []
    for name, content in tag_files:
        _check_path(name)
        if name.startswith(PAYLOAD_DIR) or name.startswith("tagmanifest-"):
            raise ValueError(f"refusing path {name!r}: a tag manifest lists only tag files other than itself")
        entries.append((name, hashlib.sha256(content).hexdigest()))
    return _bagit_manifest(entries)


# ---------------------------------------------------------------------------------------- the root
def _made(disc_path: str, content: bytes) -> DiscFile:
    return DiscFile(disc_path=disc_path, size=len(content), sha256=hashlib.sha256(content).hexdigest(), content=content)


def disc_root_files(disc: DiscInfo, payload: Sequence[DiscFile]) -> list[DiscFile]:
    """Every file at the disc's root, with its content, size and SHA-256.

    ``payload`` are the ``data/`` files (originals and access copies) with their known size and
    digest; every file the description names must be among them. ``MANIFEST.json`` lists the
    payload and the tag files made before it; it cannot list ``MANIFEST.sha256`` or the tag
    manifest, which hold its own digest.
    """
    _check_payload(disc, payload)
    made = [
        _made(BAGIT_TXT, bagit_txt()),
        _made(BAG_INFO_TXT, bag_info(disc, payload)),
        _made(PAYLOAD_MANIFEST, payload_manifest(payload)),
        _made(DESCRIPTION_TXT, description_text(disc)),
        _made(DESCRIPTION_HTML, description_html(disc).encode("utf-8")),
    ]
    made.append(_made(MANIFEST_JSON, manifest_json(disc, [*payload, *made])))
    made.append(_made(MANIFEST_SHA256, sha256_manifest((f.disc_path, f.sha256) for f in [*payload, *made])))
    made.append(_made(TAG_MANIFEST, tag_manifest([(f.disc_path, f.content or b"") for f in made])))
    return made
