"""A package's discs as a viewer retrieves them: the image itself, its SHA-256 and its written
description, each download a supervised retrieval (a ``downloaded`` custody event naming the
package, the disc, what was taken and the client); and reading the images back again.

Only a viewer who may know the package exists (every item in it visible to them,
:func:`~pipeline.catalog.access.visible_packages`) gets anything; for anyone else it is not found.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from pipeline.catalog.access import origin, require_role, visible_packages
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Package, PackageDisc, PackageFile
from pipeline.catalog.people import Role
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import NotFoundError
from pipeline.package.describe import DESCRIPTION_TXT
from pipeline.package.errors import PackageError
from pipeline.package.image import file_on_image
from pipeline.package.verify import PackageCheck, verify_package

# What of a disc may be downloaded: the image, its SHA-256 line, its written description.
WHAT = {"image": "package-image", "sha256": "package-sha256", "description": "package-description"}


@dataclass(frozen=True)
class DiscDownload:
    """One download of a disc: the image's path (streamed) or the bytes (small files), and the
    name a browser saving it should use."""

    package_id: str
    disc: int
    what: str
    media_type: str
    size: int
    sha256: str
    download_name: str
    path: Path | None = None
    content: bytes | None = None


def visible_package(session: Session, *, package_id: str, viewer: Viewer) -> Package:
    """The package ``package_id`` if the viewer may know it exists; :class:`NotFoundError` otherwise."""
    dialect = session.get_bind().dialect.name
    found = session.exec(select(Package).where(Package.id == package_id, visible_packages(viewer, dialect))).first()
    if found is None:
        raise NotFoundError(f"no package {package_id!r}")
    return found


def _disc(session: Session, package: Package, index: int) -> PackageDisc:
    disc = session.exec(
        select(PackageDisc).where(PackageDisc.package_id == package.id, PackageDisc.disc_index == index)
    ).first()
    if disc is None:
        raise NotFoundError(f"package {package.id} has no disc {index}")
    return disc


def download_disc(session: Session, *, package_id: str, index: int, what: str, viewer: Viewer) -> DiscDownload:
    """Disc ``index`` of the package as ``what`` (``image``, ``sha256`` or ``description``), recorded
    as a ``downloaded`` custody event. Custodians and the case's handlers only (others who may see
    the package get :class:`ForbiddenError`); :class:`NotFoundError` for what the viewer may not
    know exists, an unknown ``what`` or a disc not made yet."""
    if what not in WHAT:
        raise NotFoundError(f"no download {what!r}")
    package = visible_package(session, package_id=package_id, viewer=viewer)
    require_role(viewer, Role.CUSTODIAN, Role.CASE_HANDLER, doing="download disc images")
    disc = _disc(session, package, index)
    image = Path(disc.path)
    if not image.is_file():
        raise NotFoundError(f"the image of disc {index} of package {package.id} is not at {image}")
    if what == "image":
        found = DiscDownload(
            package.id, index, what, "application/x-iso9660-image", disc.size, disc.sha256, image.name, path=image
        )
    elif what == "sha256":
        content = f"{disc.sha256}  {image.name}\n".encode()
        found = _small(package.id, index, what, "text/plain; charset=utf-8", content, f"{image.name}.sha256")
    else:
        recorded = session.exec(
            select(PackageFile).where(
                PackageFile.package_id == package.id,
                PackageFile.disc_index == index,
                col(PackageFile.disc_path) == DESCRIPTION_TXT,
            )
        ).first()
        content = file_on_image(image, DESCRIPTION_TXT)
        if recorded is None or hashlib.sha256(content).hexdigest() != recorded.sha256:
            raise PackageError(f"the description on disc {index} of package {package.id} is not the one recorded")
        found = _small(package.id, index, what, "text/plain; charset=utf-8", content, f"{disc.label}-{DESCRIPTION_TXT}")
    with CustodyLog(session, viewer.name) as log:
        log.record(
            "downloaded",
            f"package:{package.id}",
            {"what": WHAT[what], "disc": index, "sha256": found.sha256, "case": package.case_number, **origin(viewer)},
        )
    return found


def _small(package_id: str, index: int, what: str, media_type: str, content: bytes, name: str) -> DiscDownload:
    digest = hashlib.sha256(content).hexdigest()
    return DiscDownload(package_id, index, what, media_type, len(content), digest, name, content=content)


def reverify_package(engine: Engine, *, package_id: str, viewer: Viewer) -> list[PackageCheck]:
    """Read every image of the package back and compare it with its manifest and the catalog (each
    check a custody event); custodians and the case's handlers only."""
    with session_scope(engine) as session:
        package = visible_package(session, package_id=package_id, viewer=viewer)
        require_role(viewer, Role.CUSTODIAN, Role.CASE_HANDLER, doing="verify disc images")
        paths = [
            Path(disc.path)
            for disc in session.exec(
                select(PackageDisc).where(PackageDisc.package_id == package.id).order_by(col(PackageDisc.disc_index))
            ).all()
        ]
    if not paths:
        raise PackageError(f"package {package_id} has no discs yet")
    return [verify_package(path, engine=engine, actor=viewer.name) for path in paths]
