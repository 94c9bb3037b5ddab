"""Which files go where on a disc: each item's original under ``data/originals``, its access copies
under ``data/access``, each under a name no other file of the folder has; the description files at
the disc's root are made by :mod:`pipeline.package.describe`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from pipeline.catalog.models import Derivative, Item
from pipeline.catalog.viewer import stricter
from pipeline.package.contents import AccessCopy, DiscFile, ItemEntry
from pipeline.package.errors import PackageError
from pipeline.package.names import FolderNames
from pipeline.storage.local import LocalStore

ORIGINALS = "data/originals"
ACCESS = "data/access"


class DiscLayout(NamedTuple):
    payload: list[DiscFile]  # the disc's data files
    entries: list[ItemEntry]  # what the description says of each item
    owners: dict[str, str | None]  # disc path -> the item the file belongs to


def disc_layout(
    items: list[Item],
    copies: Mapping[str, list[Derivative]],
    *,
    store: LocalStore,
    access_extensions: Mapping[str, str],
    case_class: str | None = None,
) -> DiscLayout:
    """The disc's data files, the description's entries (each item with its class as it applies:
    its own or ``case_class``, whichever is stricter), and which item each file belongs to."""
    originals, access = FolderNames(), FolderNames()
    payload: list[DiscFile] = []
    entries: list[ItemEntry] = []
    owners: dict[str, str | None] = {}
    for item in items:
        source = store.path(item.sha256)
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
            extension = access_extensions.get(copy.profile, "bin")
            copy_path = f"{ACCESS}/{access.claim(f'{stem}.{copy.profile}.{extension}')}"
            payload.append(
                DiscFile(disc_path=copy_path, size=copy.size, sha256=copy.sha256, source=store.path(copy.sha256))
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
                classification=stricter(item.classification, case_class).value,
            )
        )
    return DiscLayout(payload, entries, owners)


def role(disc_path: str) -> str:
    """What a file on the disc is, by its folder: an ``original``, an ``access`` copy, or ``description``."""
    if disc_path.startswith(ORIGINALS + "/"):
        return "original"
    if disc_path.startswith(ACCESS + "/"):
        return "access"
    return "description"
