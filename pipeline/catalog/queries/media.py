"""Supervised retrieval of an item's content (ACCESS.md): its access copy (played), its poster and
contact sheet (images) and its original (downloaded). :func:`retrieve` decides whether the viewer
may have it, on the same terms as :func:`~pipeline.catalog.queries.detail.item_detail`, records the
retrieval in the custody log and says which stored file to serve; the interfaces only send it.

A stream is fetched in many range requests: ``played`` is recorded once per web session, item and
access copy per :data:`PLAY_WINDOW`, found by looking in the custody log itself (the events carry a
tag of the session, never the session's key), so no other table keeps retrievals.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal, Protocol

from sqlalchemy import text
from sqlmodel import Session, col, select

from pipeline.catalog.access import purpose_for_session, retrieval_terms
from pipeline.catalog.db import LOCK_CUSTODY
from pipeline.catalog.models import CustodyEvent, Derivative, DerivativeStatus, Item
from pipeline.catalog.people import CaseMember, Role
from pipeline.catalog.queries.items import locate_item
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ForbiddenError, NotFoundError, PurposeRequiredError, StoreError

What = Literal["access", "poster", "sheet", "original"]
WHATS: tuple[What, ...] = ("access", "poster", "sheet", "original")
# A stream's range requests within this long of its last ``played`` event count as the same play.
PLAY_WINDOW = timedelta(minutes=10)
# The derivative kinds each retrieval serves, and how a missing one is named.
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "access": (("video-access", "audio-access", "image-access"), "access copy"),
    "poster": (("poster",), "poster"),
    "sheet": (("contact-sheet",), "contact sheet"),
}
ACTIONS = {"access": "played", "poster": "viewed-image", "sheet": "viewed-image", "original": "downloaded"}
IMAGE_TYPES = {"image-access": "image/jpeg", "poster": "image/jpeg", "contact-sheet": "image/jpeg"}
NAME_LIMIT = 150


class FileStore(Protocol):
    """A store whose objects are files (:class:`pipeline.storage.local.LocalStore`)."""

    def path(self, sha256: str) -> Path: ...


class OriginalPurposeRequired(PurposeRequiredError):
    """An original is downloaded only for a stated purpose."""

    def __init__(self, item: str) -> None:
        ForbiddenError.__init__(self, f"{item}: state the purpose of this download to have the original")
        self.item = item


@dataclass(frozen=True)
class Retrieval:
    """The file to send: where it is, its type, size and SHA-256 (the ETag), and the name a browser
    saving it should use (never a path here)."""

    item_id: str
    what: str
    path: Path
    media_type: str
    size: int
    sha256: str
    download_name: str
    profile: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "item": self.item_id,
            "what": self.what,
            "media_type": self.media_type,
            "size": self.size,
            "sha256": self.sha256,
            "download_name": self.download_name,
            "profile": self.profile,
        }


def retrieve(
    session: Session,
    *,
    viewer: Viewer,
    store: FileStore,
    ident: str,
    what: What,
    purpose: str | None,
    via: str,
    tool: str,
) -> Retrieval:
    """The content ``what`` of the item ``ident`` names, for ``viewer``, recorded in the custody log
    as ``played`` (an access copy; once per session, item and copy per :data:`PLAY_WINDOW`),
    ``viewed-image`` (poster, contact sheet) or ``downloaded`` (the original), with the client, the
    purpose and the interface ``via``; ``access-used`` besides when a grant was used.

    Custodians may have any item they may see, case handlers those of the cases they are assigned
    to; an original needs a purpose, given now or stated for the item earlier in the web session.
    Only a verified derivative is served, the newest of its kind.

    Raises :class:`NotFoundError` for an item the viewer may not know exists or without a verified
    derivative of the kind, :class:`ForbiddenError` for a viewer whose roles do not allow playing
    or downloading (an auditor), :class:`WithheldError` for a secret item without a grant and
    :class:`PurposeRequiredError` without a purpose where one is needed; nothing is recorded then.
    """
    if what not in WHATS:
        raise NotFoundError(f"no such content: {what!r}")
    located = locate_item(session, ident, viewer=viewer)
    item = located.item
    _require_content_role(session, viewer, item)
    terms = retrieval_terms(session, viewer, item, located.classification, purpose)
    stated = terms.purpose
    if what == "original":
        try:
            stated = purpose_for_session(session, viewer, item.id, purpose)
        except PurposeRequiredError:
            raise OriginalPurposeRequired(item.id) from None
        found = _original(store, item)
    else:
        found = _derivative(store, item, what, _verified(session, item.id, what))
    details: dict[str, object] = {"what": what, "sha256": found.sha256, "via": via, "client": viewer.client}
    if found.profile:
        details["profile"] = found.profile
    if stated:
        details["purpose"] = stated
    action = ACTIONS[what]
    if action == "played":
        tag = session_tag(viewer)
        if _played_lately(session, viewer, item.id, found.sha256, tag):
            return found
        details["session"] = tag
    with CustodyLog(session, viewer.name) as log:
        if terms.grant is not None:
            grant = terms.grant
            log.record(
                "access-used", f"item:{item.id}", {**details, "request": grant.id, "purpose": grant.purpose}, tool=tool
            )
        log.record(action, f"item:{item.id}", details, tool=tool)
    return found


def _require_content_role(session: Session, viewer: Viewer, item: Item) -> None:
    """:class:`ForbiddenError` unless the viewer may play and download the item's content: the
    server's own authority, a custodian, or a case handler assigned to its case."""
    if viewer.server or viewer.has(Role.CUSTODIAN):
        return
    if viewer.has(Role.CASE_HANDLER) and item.case_number is not None and viewer.user_id is not None:
        assigned = select(CaseMember).where(
            CaseMember.user_id == viewer.user_id, CaseMember.case_number == item.case_number
        )
        if session.exec(assigned.limit(1)).first() is not None:
            return
    raise ForbiddenError(
        f"{viewer.name} may not play or download records: that needs the custodian role, "
        "or the case-handler role on the record's case"
    )


def _verified(session: Session, item_id: str, what: str) -> Derivative:
    kinds, label = KINDS[what]
    query = (
        select(Derivative)
        .where(
            Derivative.item_id == item_id,
            col(Derivative.kind).in_(kinds),
            col(Derivative.verified).is_(True),
            Derivative.status == DerivativeStatus.VERIFIED,
            col(Derivative.sha256).is_not(None),
        )
        .order_by(col(Derivative.created_at).desc(), col(Derivative.id).desc())
        .limit(1)
    )
    found = session.exec(query).first()
    if found is None:
        raise NotFoundError(f"{item_id}: no verified {label}")
    return found


def _file(store: FileStore, sha256: str) -> tuple[Path, int]:
    path = store.path(sha256)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise StoreError(f"stored object {sha256} cannot be read: {exc.strerror or exc}") from exc
    return path, size


def _derivative(store: FileStore, item: Item, what: str, derivative: Derivative) -> Retrieval:
    assert derivative.sha256 is not None
    path, size = _file(store, derivative.sha256)
    media_type = IMAGE_TYPES.get(derivative.kind) or _sniff_av(path, derivative.kind)
    extension = mimetypes.guess_extension(media_type) or ""
    if media_type == "audio/mp4":
        extension = ".m4a"
    stem = Path(safe_name(item.original_name, fallback=item.id)).stem or item.id
    return Retrieval(
        item_id=item.id,
        what=what,
        path=path,
        media_type=media_type,
        size=size,
        sha256=derivative.sha256,
        download_name=safe_name(f"{stem}.{what}{extension}", fallback=item.id),
        profile=f"{derivative.profile}@{derivative.profile_version}",
    )


def _sniff_av(path: Path, kind: str) -> str:
    """The type of an access copy: MP4 (video or audio) or MP3, told by its first bytes."""
    if kind == "video-access":
        return "video/mp4"
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return "application/octet-stream"


def _original(store: FileStore, item: Item) -> Retrieval:
    path, size = _file(store, item.sha256)
    name = safe_name(item.original_name, fallback=item.id)
    media_type = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    return Retrieval(
        item_id=item.id,
        what="original",
        path=path,
        media_type=media_type,
        size=size,
        sha256=item.sha256,
        download_name=name,
    )


_UNSAFE = re.compile(r"[\"'`\\/:*?<>|;]")


def safe_name(name: str | None, *, fallback: str) -> str:
    """A file name to offer a browser, made from ``name``: its last path part, without control or
    format characters, quotes and characters file systems refuse, trimmed of dots and spaces at
    either end and shortened to :data:`NAME_LIMIT` characters; ``fallback`` when nothing is left."""
    last = re.split(r"[/\\]", name or "")[-1]
    kept = "".join(
        c for c in unicodedata.normalize("NFC", last) if not unicodedata.category(c).startswith(("C", "Z")) or c == " "
    )
    kept = _UNSAFE.sub("", kept).strip(" .")
    if len(kept) > NAME_LIMIT:
        stem, dot, ext = kept.rpartition(".")
        kept = (stem[: NAME_LIMIT - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else kept[:NAME_LIMIT]
    return kept or fallback


def ascii_name(name: str, *, fallback: str) -> str:
    """``name`` in plain ASCII letters, digits, ``.``, ``-`` and ``_`` (for the ``filename=`` of a
    ``Content-Disposition``), ``fallback`` in place of a stem of which nothing is left."""
    decomposed = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    stem, dot, ext = decomposed.rpartition(".")
    if not dot:
        stem, ext = decomposed, ""
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    extension = re.sub(r"[^A-Za-z0-9]+", "", ext)
    if not plain.strip("_"):
        plain = fallback
    return f"{plain}.{extension}" if extension else plain


def session_tag(viewer: Viewer) -> str:
    """What ties a stream's requests together in the log: a digest of the web session (never its
    key), or of the account and client address for a token."""
    source = f"session:{viewer.session_id}" if viewer.session_id else f"client:{viewer.user_id}:{viewer.client}"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _played_lately(session: Session, viewer: Viewer, item_id: str, sha256: str, tag: str) -> bool:
    """Whether this session played this access copy of the item within :data:`PLAY_WINDOW`."""
    if session.get_bind().dialect.name == "postgresql":
        # The custody log's own lock, so two requests of one stream cannot both find no event.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_CUSTODY})
    since = utcnow() - PLAY_WINDOW
    query = select(CustodyEvent.details).where(
        CustodyEvent.action == "played",
        CustodyEvent.target == f"item:{item_id}",
        CustodyEvent.actor == viewer.name,
        col(CustodyEvent.at) >= since,
    )
    for details in session.exec(query):
        recorded = json.loads(details)
        if recorded.get("session") == tag and recorded.get("sha256") == sha256:
            return True
    return False
