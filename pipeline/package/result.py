"""The read model of a package: its outcome and its discs, as a build returns them and as the
catalog holds them for display."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from pipeline.catalog.models import Package, PackageDisc, PackageFile


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


def package_result(session: Session, package: Package) -> PackageResult:
    """The package as the catalog records it, with its discs in order and the items on each."""
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
