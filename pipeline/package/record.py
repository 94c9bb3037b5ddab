"""Writing a build's outcome to the catalog and the custody log: a verified package with its discs,
its files and a ``packaged`` event for the package and each item, or a failed one with its reason."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Package, PackageDisc, PackageFile, PackageStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.package.contents import DiscFile
from pipeline.package.context import PackageContext
from pipeline.package.image import pycdlib_version
from pipeline.package.layout import role
from pipeline.package.result import DiscResult, PackageResult, package_result

WrittenDisc = tuple[DiscResult, list[DiscFile], dict[str, str | None]]  # the disc, its files, their items


def record_verified(
    ctx: PackageContext, package_id: str, produced_at: datetime, discs: list[WrittenDisc]
) -> PackageResult:
    """Record every disc of the package as verified, each file on it, and the ``packaged`` events."""
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
                            role=role(entry.disc_path),
                            item_id=owners.get(entry.disc_path),
                            size=entry.size,
                            sha256=entry.sha256,
                        )
                    )
                for disc_path, item_id in owners.items():
                    if item_id is not None and role(disc_path) == "original":
                        sha256 = next(f.sha256 for f in files if f.disc_path == disc_path)
                        log.record(
                            "packaged",
                            f"item:{item_id}",
                            {"package": package_id, "disc": disc.index, "path": disc_path, "sha256": sha256},
                            tool=tool,
                        )
            package.status = PackageStatus.VERIFIED
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
        return package_result(session, package)


def record_failed(ctx: PackageContext, package_id: str, error: str, discs: Sequence[WrittenDisc]) -> PackageResult:
    """Mark the package failed with ``error``, in the catalog and the custody log."""
    with session_scope(ctx.engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        package.status, package.error, package.updated_at = PackageStatus.FAILED, error, utcnow()
        session.add(package)
        with CustodyLog(session, ctx.actor) as log:
            log.record("package-failed", f"package:{package_id}", {"case": package.case_number, "error": error})
        return PackageResult(
            package=package.id,
            case_number=package.case_number,
            status=PackageStatus.FAILED,
            media=package.media,
            items=len(package.item_ids),
            discs=tuple(disc for disc, _files, _owners in discs),
            error=error,
        )
