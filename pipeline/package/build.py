"""Building a requested package: claiming it, showing signs of life while it runs, and for each disc
writing its image, reading the image back and comparing every file with what was meant to be on it.

Building again after a crash starts the images afresh; a verified package is never rebuilt.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update
from sqlmodel import col, or_, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Case, Package, PackageStatus
from pipeline.catalog.types import utcnow
from pipeline.errors import NotFoundError, TransientError, describe
from pipeline.package.contents import DiscFile, DiscInfo
from pipeline.package.context import PackageContext
from pipeline.package.describe import disc_root_files
from pipeline.package.errors import PackageError
from pipeline.package.image import ImageReadBack, read_back, write_image
from pipeline.package.layout import disc_layout
from pipeline.package.media import BASE_OVERHEAD, Medium, medium
from pipeline.package.names import volume_label
from pipeline.package.record import WrittenDisc, record_failed, record_verified
from pipeline.package.request import access_copies, plan_package, select_items
from pipeline.package.result import DiscResult, PackageResult, package_result
from pipeline.stage.issues import STAGE_ERROR
from pipeline.storage.local import fsync_dir

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (what, done, total)

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
                    col(Package.status).in_((PackageStatus.REQUESTED, PackageStatus.FAILED)),
                    (col(Package.status) == PackageStatus.BUILDING) & (col(Package.updated_at) < stale),
                ),
            )
            .values(status=PackageStatus.BUILDING, updated_at=now, error=None)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.refresh(package)
            return package_result(session, package)
    beat = _Heartbeat(ctx.engine, package_id, progress)
    try:
        return _build(ctx, package_id, beat)
    except TransientError:
        raise  # the catalog went away: the build is taken up again once it is back (and stale)
    except PackageError as exc:
        return record_failed(ctx, package_id, str(exc), ())
    except OSError as exc:  # the output folder: full, read-only, gone
        return record_failed(ctx, package_id, f"cannot write the images: {exc}", ())
    except Exception as exc:  # a defect: this package fails with the reason, logged with its traceback
        logger.exception("package %s failed", package_id)
        return record_failed(ctx, package_id, f"{STAGE_ERROR}: {describe(exc)}", ())
    except BaseException as exc:
        record_failed(ctx, package_id, f"stopped: {exc.__class__.__name__}: {exc}", ())
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
                    col(Package.status).in_((PackageStatus.REQUESTED, PackageStatus.BUILDING)),
                    col(Package.updated_at) < cutoff,
                )
            ).all()
        )


def _build(ctx: PackageContext, package_id: str, progress: Progress) -> PackageResult:
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        items = select_items(session, package.case_number, package.item_ids)
        copies = access_copies(session, [item.id for item in items]) if package.with_access_copies else {}
        case = session.get(Case, package.case_number)
        target_name = case.target if case else None
        case_class = case.classification if case else None
        session.expunge_all()
    target = medium(package.media, margin=ctx.margin, capacity=package.capacity)
    by_id = {item.id: item for item in items}
    plan = plan_package(items, copies, target, margin=ctx.margin)
    produced_at = utcnow()
    folder = Path(package.out_dir) / package.id
    if folder.exists():  # an earlier attempt that did not finish: its images were never verified
        shutil.rmtree(folder)
    folder.mkdir(mode=0o750, parents=True)  # the case's records are not for other accounts
    fsync_dir(folder.parent)
    need = sum(BASE_OVERHEAD + sum(p.need for p in disc) for disc in plan)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise PackageError(f"{folder}: the images need about {need:,} bytes and only {free:,} are free")

    discs: list[WrittenDisc] = []
    total = sum(item.size + sum(c.size or 0 for c in copies.get(item.id, [])) for item in items)
    done = 0
    for index, planned in enumerate(plan, start=1):
        label = volume_label(package.case_number, index, len(plan))
        payload, entries, owners = disc_layout(
            [by_id[p.item_id] for p in planned],
            copies,
            store=ctx.store,
            access_extensions=ctx.access_extensions,
            case_class=case_class,
        )
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
            return record_failed(ctx, package_id, f"disc {index} failed verification: {'; '.join(problems[:5])}", discs)
    return record_verified(ctx, package_id, produced_at, discs)


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
    with open(os.open(sidecar, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o640)
        out.write(f"{sha256}  {path.name}\n")
        out.flush()
        os.fsync(out.fileno())
