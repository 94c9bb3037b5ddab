"""The package stage: a case handler asks for a case's items on disc; the stage plans the discs,
writes one ISO image per disc, reads every image back and compares every file with the catalog,
and records the package, its discs and a ``packaged`` custody event for the package and each item.

Requesting and building are separate steps, so a request can be built in-process or by a worker;
building again after a crash starts the images afresh, and a verified package is never rebuilt.
Items are only read.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, update
from sqlmodel import Session, col, or_, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Case, Derivative, Item, Package, PackageDisc, PackageFile
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.errors import NotFoundError, TransientError, describe
from pipeline.package.contents import AccessCopy, DiscFile, DiscInfo, ItemEntry
from pipeline.package.describe import disc_root_files
from pipeline.package.errors import PackageError
from pipeline.package.image import ImageReadBack, pycdlib_version, read_back, write_image
from pipeline.package.media import BASE_OVERHEAD, Medium, medium
from pipeline.package.names import FolderNames, volume_label
from pipeline.package.plan import PlannedItem, plan_discs
from pipeline.stage.issues import STAGE_ERROR
from pipeline.storage.local import LocalStore, fsync_dir

logger = logging.getLogger(__name__)

ORIGINALS = "data/originals"
ACCESS = "data/access"
ACCESS_KINDS = ("video-access", "audio-access", "image-access")

Progress = Callable[[str, int, int], None]  # (what, done, total)


@dataclass(frozen=True)
class PackageContext:
    engine: Engine
    store: LocalStore
    actor: str
    zone: ZoneInfo
    packages_dir: Path
    margin: float = 0.03
    access_extensions: Mapping[str, str] = field(default_factory=dict)  # derivative profile -> extension


@dataclass(frozen=True)
class DiscResult:
    index: int
    label: str
    path: str
    size: int
    sha256: str
    files: int
    items: int
    verified: bool
    problems: tuple[str, ...] = ()
    write_seconds: float | None = None  # writing the image, flushed to disk
    verify_seconds: float | None = None  # reading it back from the disk and comparing

    def as_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "label": self.label,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "files": self.files,
            "items": self.items,
            "verified": self.verified,
            "problems": list(self.problems),
            "write_seconds": self.write_seconds,
            "verify_seconds": self.verify_seconds,
        }


@dataclass(frozen=True)
class PackageResult:
    package: str
    case_number: str
    status: str  # verified | failed
    media: str
    items: int
    discs: tuple[DiscResult, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "case": self.case_number,
            "status": self.status,
            "media": self.media,
            "items": self.items,
            "discs": [disc.as_json() for disc in self.discs],
            "error": self.error,
        }


def request_package(
    ctx: PackageContext,
    *,
    case_number: str,
    item_ids: Sequence[str] = (),
    media: str = "dvd",
    capacity: int | None = None,
    with_access_copies: bool = False,
    producer: str | None = None,
    out_dir: Path | None = None,
    purpose: str | None = None,
) -> str:
    """Record a request for a case's items (all of them, or ``item_ids``) on disc; return its id.

    The plan is made now, so a request that cannot be met (an unknown item, an item of another
    case, an item larger than the medium) is refused before anything is recorded.
    """
    target = medium(media, margin=ctx.margin, capacity=capacity)
    with session_scope(ctx.engine) as session:
        items = _select_items(session, case_number, item_ids)
        copies = _access_copies(session, [item.id for item in items]) if with_access_copies else {}
        plan_discs([_planned(item, copies.get(item.id, [])) for item in items], target, margin=ctx.margin)
        package = Package(
            case_number=case_number,
            item_ids=[item.id for item in items],
            requested_by=ctx.actor,
            purpose=purpose,
            producer=producer or ctx.actor,
            media=media,
            capacity=target.capacity,
            with_access_copies=with_access_copies,
            out_dir=str((out_dir or ctx.packages_dir).absolute()),
        )
        session.add(package)
        with CustodyLog(session, ctx.actor) as log:
            log.record(
                "package-requested",
                f"package:{package.id}",
                {
                    "case": case_number,
                    "items": package.item_ids,
                    "media": media,
                    "capacity": target.capacity,
                    "with_access_copies": with_access_copies,
                    "producer": package.producer,
                    "purpose": purpose,
                },
            )
        return package.id


HEARTBEAT = 30.0  # seconds between signs of life while a package is being built


def build_package(
    ctx: PackageContext, package_id: str, *, progress: Progress | None = None, stale_after: float = 300.0
) -> PackageResult:
    """Write and verify the images of a requested package.

    A verified package is returned as it is; one another process is building (and has shown signs
    of life within ``stale_after`` seconds) is left to it; a failed one is built afresh.
    """
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        if package is None:
            raise NotFoundError(f"no package {package_id}")
        claimed = session.execute(
            update(Package)
            .where(
                col(Package.id) == package_id,
                or_(
                    col(Package.status).in_(("requested", "failed")),
                    (col(Package.status) == "building") & (col(Package.updated_at) < stale),
                ),
            )
            .values(status="building", updated_at=now, error=None)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.refresh(package)
            return _result(session, package)
    beat = _Heartbeat(ctx.engine, package_id, progress)
    try:
        return _build(ctx, package_id, beat)
    except TransientError:
        raise  # the catalog went away: the build is taken up again once it is back (and stale)
    except PackageError as exc:
        return _fail(ctx, package_id, str(exc), ())
    except OSError as exc:  # the output folder: full, read-only, gone
        return _fail(ctx, package_id, f"cannot write the images: {exc}", ())
    except Exception as exc:  # a defect: this package fails with the reason, logged with its traceback
        logger.exception("package %s failed", package_id)
        return _fail(ctx, package_id, f"{STAGE_ERROR}: {describe(exc)}", ())
    except BaseException as exc:
        _fail(ctx, package_id, f"stopped: {exc.__class__.__name__}: {exc}", ())
        raise


class _Heartbeat:
    """Passes progress on, and every :data:`HEARTBEAT` seconds tells the catalog the build is alive."""

    def __init__(self, engine: Engine, package_id: str, progress: Progress | None) -> None:
        self.engine, self.package_id, self.progress = engine, package_id, progress
        self.last = time.monotonic()

    def __call__(self, what: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(what, done, total)
        if time.monotonic() - self.last >= HEARTBEAT:
            self.last = time.monotonic()
            with session_scope(self.engine) as session:
                session.execute(update(Package).where(col(Package.id) == self.package_id).values(updated_at=utcnow()))


def stale_packages(engine: Engine, stale_after: float) -> list[str]:
    """Packages asked for but not being built: never started (a lost message) or whose builder
    stopped showing signs of life (a killed worker)."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Package.id).where(
                    col(Package.status).in_(("requested", "building")), col(Package.updated_at) < cutoff
                )
            ).all()
        )


def _build(ctx: PackageContext, package_id: str, progress: Progress) -> PackageResult:
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        items = _select_items(session, package.case_number, package.item_ids)
        copies = _access_copies(session, [item.id for item in items]) if package.with_access_copies else {}
        case = session.get(Case, package.case_number)
        target_name = case.target if case else None
        session.expunge_all()
    target = medium(package.media, margin=ctx.margin, capacity=package.capacity)
    by_id = {item.id: item for item in items}
    plan = plan_discs([_planned(item, copies.get(item.id, [])) for item in items], target, margin=ctx.margin)
    produced_at = utcnow()
    folder = Path(package.out_dir) / package.id
    if folder.exists():  # an earlier attempt that did not finish: its images were never verified
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    fsync_dir(folder.parent)
    need = sum(BASE_OVERHEAD + sum(p.need for p in disc) for disc in plan)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise PackageError(f"{folder}: the images need about {need:,} bytes and only {free:,} are free")

    discs: list[tuple[DiscResult, list[DiscFile], dict[str, str | None]]] = []
    total = sum(item.size + sum(c.size or 0 for c in copies.get(item.id, [])) for item in items)
    done = 0
    for index, planned in enumerate(plan, start=1):
        label = volume_label(package.case_number, index, len(plan))
        payload, entries, owners = _payload(ctx, [by_id[p.item_id] for p in planned], copies)
        info = DiscInfo(
            package_id=package.id,
            case_number=package.case_number,
            target=target_name,
            producer=package.producer,
            produced_at=produced_at,
            zone=ctx.zone,
            disc_index=index,
            disc_count=len(plan),
            label=label,
            media=package.media,
            items=tuple(entries),
        )
        files = [*payload, *disc_root_files(info, payload)]
        path = folder / f"{label}.iso"
        disc_bytes = sum(f.size for f in payload)

        def report(written: int, _total: int, base: int = done, size: int = disc_bytes) -> None:
            progress("write", base + min(written, size), total)

        started = time.monotonic()
        write_image(
            path,
            files,
            label=label,
            title=package.case_number + (f" {index}/{len(plan)}" if len(plan) > 1 else ""),
            disc_index=index,
            disc_count=len(plan),
            publisher=package.producer,
            preparer=ctx.actor,
            progress=report,
        )
        written = time.monotonic()
        readback = read_back(path, progress=lambda read, size: progress("verify", read, size))
        problems = _compare(files, readback, target)
        if not problems:  # the image's own digest beside it vouches for a verified image only
            _write_sidecar(path, readback.sha256)
        result = DiscResult(
            index=index,
            label=label,
            path=str(path),
            size=readback.size,
            sha256=readback.sha256,
            files=len(files),
            items=len(planned),
            verified=not problems,
            problems=problems,
            write_seconds=round(written - started, 3),
            verify_seconds=round(time.monotonic() - written, 3),
        )
        discs.append((result, files, owners))
        done += disc_bytes
        if problems:
            return _fail(ctx, package_id, f"disc {index} failed verification: {'; '.join(problems[:5])}", discs)
    return _record(ctx, package_id, produced_at, discs)


def _select_items(session: Session, case_number: str, item_ids: Sequence[str]) -> list[Item]:
    if item_ids:
        items = []
        for item_id in dict.fromkeys(item_ids):
            item = session.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"no item {item_id}")
            if item.case_number != case_number:
                assigned = f"case {item.case_number}" if item.case_number else "no case yet"
                raise PackageError(f"item {item_id} belongs to {assigned}, not to case {case_number}")
            items.append(item)
    else:
        items = list(session.exec(select(Item).where(Item.case_number == case_number)).all())
    if not items:
        raise PackageError(f"case {case_number} has no items to package")
    return sorted(items, key=_order)


def _order(item: Item) -> str:
    when = item.captured_at or item.created_at
    return f"{when.isoformat()}|{item.id}"


def _access_copies(session: Session, item_ids: list[str]) -> dict[str, list[Derivative]]:
    rows = session.exec(
        select(Derivative)
        .where(
            col(Derivative.item_id).in_(item_ids),
            col(Derivative.kind).in_(ACCESS_KINDS),
            Derivative.status == "verified",
            col(Derivative.verified).is_(True),
        )
        .order_by(col(Derivative.profile), col(Derivative.profile_version).desc())
    ).all()
    newest: dict[tuple[str, str], Derivative] = {}
    for row in rows:
        newest.setdefault((row.item_id, row.profile), row)
    found: dict[str, list[Derivative]] = {}
    for (item_id, _profile), row in newest.items():
        found.setdefault(item_id, []).append(row)
    return found


def _planned(item: Item, copies: list[Derivative]) -> PlannedItem:
    return PlannedItem(item_id=item.id, sizes=(item.size, *(c.size or 0 for c in copies)), order=_order(item))


def _payload(
    ctx: PackageContext, items: list[Item], copies: dict[str, list[Derivative]]
) -> tuple[list[DiscFile], list[ItemEntry], dict[str, str | None]]:
    """The disc's data files, the description's entries, and which item each file belongs to."""
    originals, access = FolderNames(), FolderNames()
    payload: list[DiscFile] = []
    entries: list[ItemEntry] = []
    owners: dict[str, str | None] = {}
    for item in items:
        source = ctx.store.path(item.sha256)
        if not source.is_file():
            raise PackageError(f"item {item.id}: its stored original {source} is missing; run `evidence fixity`")
        disc_path = f"{ORIGINALS}/{originals.claim(item.original_name)}"
        payload.append(DiscFile(disc_path=disc_path, size=item.size, sha256=item.sha256, source=source))
        owners[disc_path] = item.id
        made: list[AccessCopy] = []
        for copy in copies.get(item.id, []):
            if copy.sha256 is None or copy.size is None:
                continue
            stem = item.original_name.rsplit(".", 1)[0] if "." in item.original_name else item.original_name
            extension = ctx.access_extensions.get(copy.profile, "bin")
            copy_path = f"{ACCESS}/{access.claim(f'{stem}.{copy.profile}.{extension}')}"
            payload.append(
                DiscFile(disc_path=copy_path, size=copy.size, sha256=copy.sha256, source=ctx.store.path(copy.sha256))
            )
            owners[copy_path] = item.id
            made.append(AccessCopy(disc_path=copy_path, profile=copy.profile, size=copy.size, sha256=copy.sha256))
        entries.append(
            ItemEntry(
                item_id=item.id,
                disc_path=disc_path,
                original_name=item.original_name,
                media_kind=item.media_kind,
                size=item.size,
                sha256=item.sha256,
                case_number=item.case_number,
                captured_at=item.captured_at,
                captured_place=item.captured_place,
                collector=item.collector,
                proof_object=item.proof_object,
                access_copies=tuple(made),
            )
        )
    return payload, entries, owners


def _compare(files: Sequence[DiscFile], readback: ImageReadBack, target: Medium) -> tuple[str, ...]:
    """Every difference between what was meant to be on the disc and what its image holds."""
    problems = list(readback.problems)
    expected = {f.disc_path: f for f in files}
    for disc_path in sorted(expected.keys() - readback.files.keys()):
        problems.append(f"{disc_path}: missing from the image")
    for disc_path in sorted(readback.files.keys() - expected.keys()):
        problems.append(f"{disc_path}: on the image but not in the package")
    for disc_path in sorted(expected.keys() & readback.files.keys()):
        found = readback.files[disc_path]
        if found.sha256 != expected[disc_path].sha256 or found.size != expected[disc_path].size:
            problems.append(f"{disc_path}: expected sha256 {expected[disc_path].sha256}, read back {found.sha256}")
    if readback.size > target.capacity:
        problems.append(f"the image is {readback.size:,} bytes, more than a {target.description} holds")
    return tuple(problems)


def _write_sidecar(path: Path, sha256: str) -> None:
    sidecar = path.with_name(path.name + ".sha256")
    with open(sidecar, "w", encoding="utf-8") as out:
        out.write(f"{sha256}  {path.name}\n")
        out.flush()
        os.fsync(out.fileno())


def _role(disc_path: str) -> str:
    if disc_path.startswith(ORIGINALS + "/"):
        return "original"
    if disc_path.startswith(ACCESS + "/"):
        return "access"
    return "description"


def _record(
    ctx: PackageContext,
    package_id: str,
    produced_at: datetime,
    discs: list[tuple[DiscResult, list[DiscFile], dict[str, str | None]]],
) -> PackageResult:
    tool = pycdlib_version()
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        now = utcnow()
        with CustodyLog(session, ctx.actor) as log:
            for disc, files, owners in discs:
                session.add(
                    PackageDisc(
                        package_id=package_id,
                        disc_index=disc.index,
                        label=disc.label,
                        path=disc.path,
                        size=disc.size,
                        sha256=disc.sha256,
                        file_count=disc.files,
                        verified=True,
                        verification={
                            "method": "read-back",
                            "files": disc.files,
                            "problems": [],
                            "write_seconds": disc.write_seconds,
                            "verify_seconds": disc.verify_seconds,
                        },
                        verified_at=now,
                    )
                )
                for entry in files:
                    session.add(
                        PackageFile(
                            package_id=package_id,
                            disc_index=disc.index,
                            disc_path=entry.disc_path,
                            role=_role(entry.disc_path),
                            item_id=owners.get(entry.disc_path),
                            size=entry.size,
                            sha256=entry.sha256,
                        )
                    )
                for disc_path, item_id in owners.items():
                    if item_id is not None and _role(disc_path) == "original":
                        sha256 = next(f.sha256 for f in files if f.disc_path == disc_path)
                        log.record(
                            "packaged",
                            f"item:{item_id}",
                            {"package": package_id, "disc": disc.index, "path": disc_path, "sha256": sha256},
                            tool=tool,
                        )
            package.status = "verified"
            package.disc_count = len(discs)
            package.produced_at = produced_at
            package.completed_at = now
            package.updated_at = now
            package.tool = tool
            package.error = None
            session.add(package)
            log.record(
                "packaged",
                f"package:{package_id}",
                {
                    "case": package.case_number,
                    "producer": package.producer,
                    "media": package.media,
                    "discs": [
                        {"index": d.index, "label": d.label, "sha256": d.sha256, "size": d.size, "files": d.files}
                        for d, _files, _owners in discs
                    ],
                    "verification": "every file read back from every image matched",
                },
                tool=tool,
            )
        return _result(session, package)


def _fail(
    ctx: PackageContext,
    package_id: str,
    error: str,
    discs: Sequence[tuple[DiscResult, list[DiscFile], dict[str, str | None]]],
) -> PackageResult:
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        package.status, package.error, package.updated_at = "failed", error, utcnow()
        session.add(package)
        with CustodyLog(session, ctx.actor) as log:
            log.record("package-failed", f"package:{package_id}", {"case": package.case_number, "error": error})
        return PackageResult(
            package=package.id,
            case_number=package.case_number,
            status="failed",
            media=package.media,
            items=len(package.item_ids),
            discs=tuple(disc for disc, _files, _owners in discs),
            error=error,
        )


def _result(session: Session, package: Package) -> PackageResult:
    rows = session.exec(
        select(PackageDisc).where(PackageDisc.package_id == package.id).order_by(col(PackageDisc.disc_index))
    ).all()
    counts: dict[int, int] = {}
    for disc_index in session.exec(
        select(PackageFile.disc_index).where(PackageFile.package_id == package.id, PackageFile.role == "original")
    ).all():
        counts[disc_index] = counts.get(disc_index, 0) + 1
    return PackageResult(
        package=package.id,
        case_number=package.case_number,
        status=package.status,
        media=package.media,
        items=len(package.item_ids),
        discs=tuple(
            DiscResult(
                index=row.disc_index,
                label=row.label,
                path=row.path,
                size=row.size,
                sha256=row.sha256,
                files=row.file_count,
                items=counts.get(row.disc_index, 0),
                verified=row.verified,
                problems=_texts(row.verification.get("problems")),
                write_seconds=_seconds(row.verification.get("write_seconds")),
                verify_seconds=_seconds(row.verification.get("verify_seconds")),
            )
            for row in rows
        ),
        error=package.error,
    )


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _texts(value: object) -> tuple[str, ...]:
    return tuple(str(text) for text in value) if isinstance(value, list) else ()
