"""Checks a disc, as an ISO image or as a mounted or copied folder, against its own manifest and,
when the catalog knows its package, against what the catalog recorded when the disc was made.

Every missing, extra and altered file is named; nothing is repaired or changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import PackageDisc, PackageFile
from pipeline.custody import CustodyLog
from pipeline.package.describe import MANIFEST_JSON, MANIFEST_SHA256, TAG_MANIFEST
from pipeline.package.errors import PackageError
from pipeline.package.image import ImageReadBack, read_back

_NOT_IN_MANIFEST = (MANIFEST_SHA256, TAG_MANIFEST)  # they hold the manifest's own digest
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackageCheck:
    path: str
    kind: str  # image | folder
    files: int
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    altered: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    package: str | None = None
    disc: int | None = None
    sha256: str | None = None  # the image's own, for images
    catalog: bool = False  # whether the catalog's record of the disc was compared too

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.altered or self.problems)

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "kind": self.kind,
            "package": self.package,
            "disc": self.disc,
            "files": self.files,
            "missing": list(self.missing),
            "extra": list(self.extra),
            "altered": list(self.altered),
            "problems": list(self.problems),
            "sha256": self.sha256,
            "catalog": self.catalog,
        }


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def parse_manifest(text: str, source: str) -> dict[str, str]:
    """``sha256sum`` lines (``<hex>  <path>`` or ``<hex> *<path>``) as path -> digest."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, rest = line.partition(" ")
        path = rest[1:] if rest[:1] in (" ", "*") else rest
        if len(digest) != 64 or not path:
            raise PackageError(f"{source} line {number}: not a sha256sum line: {line!r}")
        found[path] = digest.lower()
    return found


def verify_package(path: Path, *, engine: Engine | None = None, actor: str | None = None) -> PackageCheck:
    """Check one disc (``path``: an ``.iso`` image or a folder). With ``engine``, also compare it
    with the catalog's record of the package and record the check in the custody log."""
    if path.is_dir():
        kind = "folder"
        found = {
            str(file.relative_to(path).as_posix()): _hash_file(file)
            for file in sorted(path.rglob("*"))
            if file.is_file()
        }
        image_sha256 = None
        problems: list[str] = []

        def content(name: str) -> bytes | None:
            target = path / name
            return target.read_bytes() if target.is_file() else None

    elif path.is_file():
        kind = "image"
        readback: ImageReadBack = read_back(path)
        found = {name: file.sha256 for name, file in readback.files.items()}
        image_sha256 = readback.sha256
        problems = list(readback.problems)
        problems += _sidecar_problems(path, readback.sha256)

        def content(name: str) -> bytes | None:
            return readback.content(path, name) if name in found else None

    else:
        raise PackageError(f"{path}: no such image or folder")

    manifest_bytes = content(MANIFEST_SHA256)
    if manifest_bytes is None:
        return PackageCheck(
            str(path), kind, len(found), problems=(f"no {MANIFEST_SHA256}: this is not a package disc",)
        )
    try:
        expected = parse_manifest(manifest_bytes.decode("utf-8"), MANIFEST_SHA256)
        tag_bytes = content(TAG_MANIFEST)
        tags = parse_manifest(tag_bytes.decode("utf-8"), TAG_MANIFEST) if tag_bytes is not None else None
    except UnicodeDecodeError as exc:
        problem = f"a manifest is not UTF-8 text (byte {exc.start}): it was not written by this pipeline"
        return PackageCheck(str(path), kind, len(found), problems=(*problems, problem))
    if tags is not None:
        listed = tags.get(MANIFEST_SHA256)
        if listed is not None and listed != hashlib.sha256(manifest_bytes).hexdigest():
            problems.append(f"{MANIFEST_SHA256} does not match its digest in {TAG_MANIFEST}")
    present = {name: digest for name, digest in found.items() if name not in _NOT_IN_MANIFEST}
    missing = sorted(expected.keys() - present.keys())
    extra = sorted(present.keys() - expected.keys())
    altered = sorted(name for name in expected.keys() & present.keys() if expected[name] != present[name])

    package_id, disc_index = _identity(content(MANIFEST_JSON))
    compared = False
    if engine is not None and package_id is not None and disc_index is not None:
        record = _against_catalog(engine, package_id, disc_index, present, image_sha256)
        if record is not None:
            compared = True
            missing += record.missing
            altered += record.altered
            problems += record.problems
    check = PackageCheck(
        path=str(path),
        kind=kind,
        files=len(found),
        missing=tuple(sorted(set(missing))),
        extra=tuple(extra),
        altered=tuple(sorted(set(altered))),
        problems=tuple(problems),
        package=package_id,
        disc=disc_index,
        sha256=image_sha256,
        catalog=compared,
    )
    if engine is not None and compared and package_id is not None:
        with session_scope(engine) as session, CustodyLog(session, actor or "unknown") as log:
            log.record(
                "package-checked",
                f"package:{package_id}",
                {"disc": disc_index, "path": str(path), "ok": check.ok, "altered": list(altered), "missing": missing},
            )
    return check


def _sidecar_problems(path: Path, sha256: str) -> list[str]:
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return []
    recorded = sidecar.read_text(encoding="utf-8").split()
    if recorded and recorded[0].lower() != sha256:
        return [f"the image's SHA-256 is {sha256}, its {sidecar.name} says {recorded[0]}"]
    return []


def _identity(manifest_json: bytes | None) -> tuple[str | None, int | None]:
    if manifest_json is None:
        return None, None
    try:
        data = json.loads(manifest_json)
        disc = data.get("disc") or {}
        return str(data["package_id"]), int(disc["index"])
    except (ValueError, KeyError, TypeError):
        return None, None


@dataclass(frozen=True)
class _CatalogRecord:
    missing: list[str]
    altered: list[str]
    problems: list[str]


def _against_catalog(
    engine: Engine, package_id: str, disc_index: int, present: dict[str, str], image_sha256: str | None
) -> _CatalogRecord | None:
    """What differs from the catalog's record of the disc, or ``None`` when the catalog has none."""
    record = _CatalogRecord([], [], [])
    with session_scope(engine) as session:
        disc = session.exec(
            select(PackageDisc).where(PackageDisc.package_id == package_id, PackageDisc.disc_index == disc_index)
        ).first()
        if disc is None:
            return None
        if image_sha256 is not None and image_sha256 != disc.sha256:
            record.problems.append(f"the image's SHA-256 is {image_sha256}, the catalog recorded {disc.sha256}")
        rows = session.exec(
            select(PackageFile).where(PackageFile.package_id == package_id, PackageFile.disc_index == disc_index)
        ).all()
        for row in rows:
            if row.disc_path in _NOT_IN_MANIFEST:
                continue
            if row.disc_path not in present:
                record.missing.append(row.disc_path)
            elif present[row.disc_path] != row.sha256:
                record.altered.append(row.disc_path)
                record.problems.append(f"{row.disc_path}: SHA-256 differs from the catalog's {row.sha256}")
    return record
