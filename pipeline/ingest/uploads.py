"""Resumable uploads (tus 1.0): files sent over HTTP by docks, recorders and custodians, received in
pieces into a partial file and then taken in exactly as a file found in a watched folder.

The order of durable steps is what makes a broken upload safe to resume:

1. every piece is appended to ``uploads/<id>.part`` under the data folder and flushed to disk
   (``fsync``) *before* the new offset is recorded in the catalog, so after any crash the recorded
   offset never runs ahead of the bytes; a file found longer than its offset (bytes written, offset
   not yet recorded) is cut back to the offset before the next piece is appended;
2. once the last byte is recorded, the partial file becomes a sighting of the uploader's dock,
   named with the original name, and goes through :mod:`pipeline.ingest.intake` like any other
   (catalog, custody events, duplicates by hash). Being the pipeline's own file, it is not copied
   but adopted by the store: its digests are those of the file as read back from disk (piece by
   piece while the next arrived, :mod:`pipeline.ingest.readback`, or in full now when this process
   did not follow every piece), checked against the whole file's SHA-256 the client declared (if
   any: a mismatch fails the upload, nothing is catalogued and the bytes go to quarantine), and it
   is made read-only and linked under its digest; the partial file's name is removed only after
   the catalog has committed (source policy ``delete``).

Nothing here knows HTTP: the web layer parses the headers and maps the errors to statuses.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from pipeline.accounts.rules import check_name
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Disposition, Sighting, SightingStatus, Upload, UploadStatus
from pipeline.catalog.people import Role
from pipeline.catalog.types import iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import (
    ConflictError,
    ForbiddenError,
    InvalidValueError,
    NotFoundError,
    PipelineError,
    StoreError,
    TransientError,
)
from pipeline.ingest.appending import Appender, CachedAppender, appender
from pipeline.ingest.context import IntakeContext, IntakeResult
from pipeline.ingest.intake import Arrival, Known, intake, intake_leased, open_sightings
from pipeline.ingest.readback import ReadBack
from pipeline.settings import FILE_MODE, Settings, private_dir
from pipeline.stage.names import path_key, readable
from pipeline.storage.local import fsync_dir

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
CHECKSUM_ALGORITHMS = ("sha256",)
DEFAULT_DOCK = "upload"  # the dock of a custodian's upload that names none
NAME_LIMIT = 1024  # bytes of an original name
METADATA_LIMIT = 16 * 1024  # characters of the Upload-Metadata header
PART_SUFFIX = ".part"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEY = re.compile(r"[!-~]+")  # printable ASCII, no space (and no comma: it separates the pairs)
UPLOADERS = (Role.DOCK, Role.CUSTODIAN)  # ACCESS.md: an admin handles no evidence


# ------------------------------------------------------------------------------------------ errors
class UploadError(PipelineError):
    """An upload request that cannot be carried out; ``upload`` names the upload (None before one
    exists) and the message says why."""

    def __init__(self, upload: str | None, reason: str) -> None:
        super().__init__(f"upload {upload}: {reason}" if upload else reason)
        self.upload = upload
        self.reason = reason


class UploadTooLarge(UploadError):
    """More bytes than the server takes (``upload_max_bytes``) or than the upload declared."""


class OffsetMismatch(UploadError):
    """The piece does not start where the recorded bytes end; ``offset`` is where they do."""

    def __init__(self, upload: str, given: int, offset: int) -> None:
        super().__init__(upload, f"the piece starts at byte {given:,}, but {offset:,} bytes are recorded")
        self.offset = offset


class ChecksumMismatch(UploadError):
    """A piece's bytes do not match the digest sent with them; nothing of the piece was kept."""


class UnsupportedChecksum(UploadError, InvalidValueError):
    """A checksum algorithm the server does not offer."""


class UploadBusy(UploadError):
    """Another request is writing to the same upload at this moment."""


class UploadGone(UploadError):
    """The upload lay idle past its expiry and was removed."""


class InsufficientStorage(UploadError):
    """The disk has no room for the declared length (and its stored copy) beyond the reserve."""


class TooManyUploads(UploadError):
    """The token or account already holds its limit of incomplete uploads."""


# ----------------------------------------------------------------------------------------- context
@dataclass(frozen=True)
class UploadContext:
    """What the upload service needs: intake's context (its actor signs intake's events), where the
    partial files live, the limits, and the name that holds the sightings' leases."""

    intake: IntakeContext
    uploads_dir: Path
    max_bytes: int
    max_concurrent: int
    expiry: timedelta
    reserve_bytes: int
    worker: str
    read_back: ReadBack | None = None  # reads each recorded piece back while the next arrives

    @property
    def engine(self) -> Any:
        return self.intake.engine

    def part_path(self, upload_id: str) -> Path:
        return self.uploads_dir / f"{upload_id}{PART_SUFFIX}"

    def acting(self, viewer: Viewer) -> UploadContext:
        """The same context with intake's custody events signed by ``viewer``."""
        return replace(self, intake=replace(self.intake, actor=viewer.name))


def upload_context(ctx: IntakeContext, settings: Settings, *, worker: str) -> UploadContext:
    """The upload service's context from the settings, around intake's ``ctx``."""
    return UploadContext(
        intake=ctx,
        uploads_dir=settings.uploads_dir,
        max_bytes=settings.upload_max_bytes,
        max_concurrent=settings.upload_max_concurrent,
        expiry=timedelta(hours=settings.upload_expiry_hours),
        reserve_bytes=settings.upload_reserve_bytes,
        worker=worker,
        read_back=ReadBack(ctx.algorithms),
    )


@dataclass(frozen=True)
class UploadState:
    """An upload as its uploader may see it."""

    id: str
    length: int
    offset: int
    status: str
    expires_at: datetime
    dock: str
    original_name: str
    item_id: str | None = None
    error: str | None = None
    outcome: str | None = None  # when just taken in: "stored" (a new item) or "duplicate"

    @classmethod
    def of(cls, row: Upload) -> UploadState:
        return cls(
            row.id,
            row.length,
            row.offset,
            row.status,
            row.expires_at,
            row.dock_id,
            row.original_name,
            row.item_id,
            row.error,
        )

    @property
    def received(self) -> bool:
        """Every declared byte is recorded."""
        return self.offset >= self.length


@dataclass(frozen=True)
class Declared:
    """What the client said of the file in ``Upload-Metadata``."""

    name: bytes = b""
    sha256: str | None = None
    dock: str | None = None
    media_type: str | None = None


# ---------------------------------------------------------------------------------------- metadata
def parse_metadata(header: str | None) -> dict[str, bytes]:
    """The pairs of a tus ``Upload-Metadata`` header (``key base64,key base64,…``; a key may come
    without a value). :class:`InvalidValueError` for a malformed header, never a guess."""
    if not header or not header.strip():
        return {}
    if len(header) > METADATA_LIMIT:
        raise InvalidValueError(f"Upload-Metadata is {len(header):,} characters long; at most {METADATA_LIMIT:,}")
    found: dict[str, bytes] = {}
    for pair in header.split(","):
        key, _, value = pair.strip().partition(" ")
        if not _KEY.fullmatch(key):
            raise InvalidValueError("Upload-Metadata: a key is empty or holds characters other than printable ASCII")
        if key in found:
            raise InvalidValueError(f"Upload-Metadata: the key {key[:40]!r} is given twice")
        value = value.strip()
        try:
            found[key] = base64.b64decode(value, validate=True) if value else b""
        except (binascii.Error, ValueError):
            raise InvalidValueError(f"Upload-Metadata: the value of {key[:40]!r} is not base64") from None
    return found


def declared(metadata: dict[str, bytes]) -> Declared:
    """The known keys of the metadata, checked: ``filename`` (any bytes but NUL, at most
    :data:`NAME_LIMIT`; kept as the original name, never used as a path), ``sha256`` (64 hex
    digits), ``dock`` (a dock's name) and ``type`` (or ``filetype``). Other keys are ignored."""
    name = metadata.get("filename", b"")
    if b"\x00" in name:
        raise InvalidValueError("the file name holds a NUL byte; it cannot be kept as a name")
    if len(name) > NAME_LIMIT:
        raise InvalidValueError(f"the file name is {len(name):,} bytes long; at most {NAME_LIMIT:,}")
    digest = None
    if "sha256" in metadata:
        digest = metadata["sha256"].decode("ascii", "replace").strip().lower()
        if not _SHA256.fullmatch(digest):
            raise InvalidValueError("the declared sha256 is not 64 hexadecimal digits")
    dock = None
    if metadata.get("dock"):
        dock = check_name(metadata["dock"].decode("utf-8", "replace"), what="dock", length=255)
    media = metadata.get("type") or metadata.get("filetype")
    media_type = media.decode("utf-8", "replace").replace("\x00", "")[:255] or None if media else None
    return Declared(name, digest, dock, media_type)


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: ALGORITHM BASE64`` as the algorithm and the digest's bytes; None without
    the header. :class:`UnsupportedChecksum` for an algorithm not offered, :class:`InvalidValueError`
    for a malformed header."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UnsupportedChecksum(None, f"checksum algorithm {algorithm[:40]!r} is not offered; use sha256")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValueError("Upload-Checksum: the digest is not base64") from None
    if len(digest) != hashlib.sha256().digest_size:
        raise InvalidValueError("Upload-Checksum: the digest is not a SHA-256 digest (32 bytes)")
    return algorithm, digest


def upload_dock(viewer: Viewer, asked: str | None) -> str:
    """The dock an upload is recorded under: a dock's own (a dock may upload for no other), else
    the one asked for by a custodian, else :data:`DEFAULT_DOCK`."""
    if not viewer.has(*UPLOADERS):
        raise ForbiddenError("only docks and custodians may upload")
    if viewer.dock is not None and viewer.has(Role.DOCK):
        if asked is not None and asked != viewer.dock:
            raise ForbiddenError(f"this credential uploads for dock {viewer.dock} only, not for {asked}")
        return viewer.dock
    return asked or DEFAULT_DOCK


# ---------------------------------------------------------------------------------------- creation
def _free_bytes(path: Path) -> int:
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return True  # assume the worst: the stored copy needs room here too


def check_room(uctx: UploadContext, session: Session, length: int) -> None:
    """Refuse (:class:`InsufficientStorage`) an upload of ``length`` bytes the disk cannot hold
    with its stored copy (when the store shares the disk), the bytes the uploads under way still
    need, and the reserve. Checked when the upload is made, before a byte is received."""
    private_dir(uctx.uploads_dir)
    store_root = getattr(uctx.intake.store, "root", None)
    copies = 2 if store_root is None or _same_disk(uctx.uploads_dir, Path(store_root)) else 1
    pending = session.exec(
        select(func.coalesce(func.sum(col(Upload.length) - col(Upload.offset)), 0)).where(
            Upload.status == UploadStatus.RECEIVING
        )
    ).one()
    needed = length * copies + int(pending or 0) * copies + uctx.reserve_bytes
    available = _free_bytes(uctx.uploads_dir)
    if needed > available:
        raise InsufficientStorage(
            None,
            f"not enough disk space for {length:,} bytes: {needed:,} bytes needed with the stored copy, the uploads "
            f"under way and the reserve of {uctx.reserve_bytes:,}; {available:,} bytes free in {uctx.uploads_dir}",
        )


def create_upload(uctx: UploadContext, *, viewer: Viewer, length: int, given: Declared) -> UploadState:
    """Make an upload of ``length`` bytes for ``viewer``: its row, its empty partial file (0640)
    and its ``upload-started`` custody event. Refused before anything is received when it is too
    large, the disk has no room, or the uploader holds too many incomplete uploads already."""
    dock = upload_dock(viewer, given.dock)
    if length < 0:
        raise InvalidValueError(f"Upload-Length {length} is negative")
    if length > uctx.max_bytes:
        raise UploadTooLarge(None, f"{length:,} bytes is more than the largest upload taken ({uctx.max_bytes:,} bytes)")
    now = utcnow()
    with session_scope(uctx.engine) as session:
        held = session.exec(
            select(func.count())
            .select_from(Upload)
            .where(Upload.owner == viewer.name, Upload.status == UploadStatus.RECEIVING, col(Upload.expires_at) > now)
        ).one()
        if held >= uctx.max_concurrent:
            raise TooManyUploads(
                None,
                f"{viewer.name} already has {held} incomplete upload(s), the most allowed at once; "
                "finish or end one first",
            )
        check_room(uctx, session, length)
        row = Upload(
            owner=viewer.name,
            dock_id=dock,
            length=length,
            original_name=readable(given.name),
            original_name_raw=given.name,
            declared_sha256=given.sha256,
            media_type=given.media_type,
            created_at=now,
            updated_at=now,
            expires_at=now + uctx.expiry,
        )
        if not given.name:
            row.original_name_raw = f"upload-{row.id}".encode()
            row.original_name = readable(row.original_name_raw)
        _make_part(uctx.part_path(row.id))
        session.add(row)
        with CustodyLog(session, viewer.name) as log:
            log.record(
                "upload-started",
                f"upload:{row.id}",
                {
                    "dock": dock,
                    "length": length,
                    "original_name": row.original_name,
                    "sha256": given.sha256,
                    "client": viewer.client,
                },
                tool=uctx.intake.tool,
            )
    return UploadState.of(row)


def _make_part(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------- lookups
def _owned(session: Session, viewer: Viewer, upload_id: str, *, lock: bool = False) -> Upload:
    """The viewer's upload; :class:`NotFoundError` for one that is not theirs, whatever it is."""
    row = session.get(Upload, upload_id, with_for_update=lock) if len(upload_id) <= 26 else None
    if row is None or row.owner != viewer.name or row.status == UploadStatus.TERMINATED:
        raise NotFoundError(f"no upload {upload_id[:40]!r}")
    return row


def _remove_part(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


def _expire(uctx: UploadContext, session: Session, row: Upload, actor: str) -> None:
    """Remove an idle incomplete upload's partial file and record ``upload-expired``."""
    _remove_part(uctx.part_path(row.id))
    _forget(uctx, row.id)
    received = row.offset
    row.status = UploadStatus.EXPIRED
    row.error = f"idle since {iso(row.updated_at)}; removed with {received:,} of {row.length:,} bytes received"
    row.updated_at = utcnow()
    session.add(row)
    with CustodyLog(session, actor) as log:
        log.record(
            "upload-expired",
            f"upload:{row.id}",
            {"dock": row.dock_id, "received": received, "length": row.length, "original_name": row.original_name},
            tool=uctx.intake.tool,
        )


def _live(uctx: UploadContext, session: Session, viewer: Viewer, upload_id: str, *, lock: bool = False) -> Upload:
    """The viewer's upload, not expired: one whose time ran out is removed now (:class:`UploadGone`)."""
    row = _owned(session, viewer, upload_id, lock=lock)
    if row.status == UploadStatus.RECEIVING and row.expires_at <= utcnow():
        _expire(uctx, session, row, viewer.name)
        session.commit()
    if row.status == UploadStatus.EXPIRED:
        raise UploadGone(row.id, "it lay idle past its expiry and was removed; start it again")
    return row


def upload_state(uctx: UploadContext, *, viewer: Viewer, upload_id: str) -> UploadState:
    """The viewer's upload as it stands (``HEAD``). One whose last byte is recorded but that was
    not taken in yet (the server stopped in between) is taken in now."""
    with session_scope(uctx.engine) as session:
        row = _live(uctx, session, viewer, upload_id)
        state = UploadState.of(row)
    if state.status == UploadStatus.RECEIVING and state.received:
        try:
            return finish_upload(uctx.acting(viewer), upload_id=upload_id, actor=viewer.name)
        except TransientError as exc:  # received and safe; taken in later
            logger.warning("upload %s: %s", upload_id, exc)
    return state


# ------------------------------------------------------------------------------------------ pieces
class Piece:
    """One PATCH's bytes on their way into the partial file: made by :func:`open_piece`, fed with
    :meth:`write`, ended by :meth:`commit` (flushed to disk, then the offset recorded) or
    :meth:`abandon` (the file cut back to where the piece began). Holds an exclusive lock on the
    partial file meanwhile, so two requests never write to one upload at once."""

    def __init__(
        self,
        uctx: UploadContext,
        state: UploadState,
        fd: int,
        checksum: tuple[str, bytes] | None,
        out: Appender | None = None,
    ) -> None:
        self.uctx = uctx
        self.state = state
        self.fd = fd
        self.out = out or CachedAppender(fd, state.offset)
        self.start = state.offset
        self.checksum = checksum
        self.piece_digest = hashlib.sha256() if checksum else None
        self.closed = False

    @property
    def upload_id(self) -> str:
        return self.state.id

    @property
    def position(self) -> int:
        """Where the next byte goes: past every byte written so far."""
        return self.out.position

    def write(self, buffers: Sequence[bytes]) -> None:
        """Append the bytes of ``buffers``, in order (not yet durable; how:
        :mod:`~pipeline.ingest.appending`). :class:`UploadTooLarge` past the declared length,
        :class:`InsufficientStorage` when the disk fills. Their checksum is :meth:`check`'s, which
        may run at the same time on another thread."""
        size = sum(len(buffer) for buffer in buffers)
        if self.position + size > self.state.length:
            raise UploadTooLarge(
                self.upload_id, f"the piece runs past the declared length of {self.state.length:,} bytes"
            )
        with self._disk_full_is_storage():
            self.out.write(buffers)

    def check(self, buffers: Sequence[bytes]) -> None:
        """Add ``buffers`` (in the order they are written) to the piece's checksum."""
        if self.piece_digest is not None:
            for buffer in buffers:
                self.piece_digest.update(buffer)

    def commit(self) -> UploadState:
        """Check the piece's checksum, flush it to disk, and only then record the new offset.
        :class:`ChecksumMismatch` (the piece cut away, the offset unchanged) when it differs."""
        try:
            if (
                self.checksum is not None
                and self.piece_digest is not None
                and (self.piece_digest.digest() != self.checksum[1])
            ):
                received = self.position - self.start
                self._cut_back()
                raise ChecksumMismatch(
                    self.upload_id,
                    f"the {received:,} bytes from offset {self.start:,} do not match their sha256 checksum; "
                    "they were not kept",
                )
            if self.position == self.start:
                return self.state
            with self._disk_full_is_storage():
                self.out.finish()
            os.fsync(self.fd)  # the bytes are on disk before the catalog says they are there
            now = utcnow()
            with session_scope(self.uctx.engine) as session:
                changed = session.execute(
                    update(Upload)
                    .where(
                        col(Upload.id) == self.upload_id,
                        col(Upload.offset) == self.start,
                        col(Upload.status) == UploadStatus.RECEIVING,
                    )
                    .values(offset=self.position, updated_at=now, expires_at=now + self.uctx.expiry)
                )
                if getattr(changed, "rowcount", 1) != 1:
                    raise UploadBusy(self.upload_id, "the upload changed while this piece was written")
            if self.uctx.read_back is not None:
                self.uctx.read_back.follow(
                    self.upload_id, self.uctx.part_path(self.upload_id), self.start, self.position
                )
            self.state = replace(self.state, offset=self.position, expires_at=now + self.uctx.expiry)
            return self.state
        finally:
            self.close()

    def abandon(self) -> None:
        """Cut the file back to where this piece began; the offset stays as it was."""
        try:
            self._cut_back()
        finally:
            self.close()

    def _cut_back(self) -> None:
        os.ftruncate(self.fd, self.start)

    @contextlib.contextmanager
    def _disk_full_is_storage(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    self.upload_id, f"the disk filled up while receiving: {exc.strerror}"
                ) from exc
            raise

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.out.close()
            os.close(self.fd)  # releases the lock too


def open_piece(
    uctx: UploadContext,
    *,
    viewer: Viewer,
    upload_id: str,
    offset: int,
    checksum: tuple[str, bytes] | None = None,
    content_length: int | None = None,
) -> Piece:
    """Get the viewer's upload ready to receive a piece starting at ``offset``: its partial file
    opened and locked, cut back to the recorded offset when a crash left more bytes than were
    recorded. :class:`OffsetMismatch` when ``offset`` is not where the recorded bytes end,
    :class:`UploadTooLarge` when ``content_length`` runs past the declared length."""
    with session_scope(uctx.engine) as session:
        row = _live(uctx, session, viewer, upload_id)
        state = UploadState.of(row)
    if offset != state.offset:
        raise OffsetMismatch(state.id, offset, state.offset)
    if content_length is not None and offset + content_length > state.length:
        raise UploadTooLarge(state.id, f"{offset + content_length:,} bytes is more than the declared {state.length:,}")
    if state.status != UploadStatus.RECEIVING:
        # Taken in (or failed) already: an empty piece at its end only asks how it went.
        return Piece(uctx, state, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), None)
    path = uctx.part_path(state.id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise StoreError(f"upload {state.id}: its partial file {path.name} is missing from {path.parent}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UploadBusy(state.id, "another request is writing to this upload; ask for its offset again") from None
    size = os.fstat(fd).st_size
    if size > state.offset:
        # Bytes written after the last recorded offset (the server stopped before recording them).
        logger.info("upload %s: cutting %d unrecorded byte(s) after offset %d", state.id, size - offset, offset)
        os.ftruncate(fd, state.offset)
        os.fsync(fd)
    elif size < state.offset:
        os.close(fd)
        raise StoreError(
            f"upload {state.id}: its partial file holds {size:,} bytes but {state.offset:,} were recorded; "
            "the disk lost data"
        )
    try:
        out = appender(fd, path, state.offset)
    except OSError:
        os.close(fd)
        raise
    return Piece(uctx, state, fd, checksum, out)


# -------------------------------------------------------------------------------------- completion
def finish_upload(uctx: UploadContext, *, upload_id: str, actor: str) -> UploadState:
    """Take in an upload whose last byte is recorded: hand the partial file to intake as a sighting
    of the upload's dock, with the SHA-256 the client declared (a file that differs fails). Idempotent:
    a finished upload is returned as it is, and one whose sighting exists already is taken in by
    that sighting."""
    with session_scope(uctx.engine) as session:
        row = session.get(Upload, upload_id)
        if row is None:
            raise NotFoundError(f"no upload {upload_id[:40]!r}")
        state = UploadState.of(row)
        sighting_id = row.sighting_id or _sighting_of(session, uctx.part_path(upload_id))
        name, declared_sha, dock = row.original_name_raw, row.declared_sha256, row.dock_id
    if state.status != UploadStatus.RECEIVING or not state.received:
        return state
    ctx = uctx.intake
    read_back = uctx.read_back.digests(upload_id, state.length) if uctx.read_back is not None else None
    known = Known(declared_sha, read_back)
    if sighting_id is None:
        arrival = Arrival(os.fsencode(uctx.part_path(upload_id)), dock, "delete", name=name)
        (opened,) = open_sightings(ctx, [arrival], lease_to=uctx.worker)
        if opened is None:
            raise TransientError(f"upload {upload_id}: being taken in by another request; ask again shortly")
        with session_scope(uctx.engine) as session:
            session.execute(update(Upload).where(col(Upload.id) == upload_id).values(sighting_id=opened.id))
        (result,) = intake_leased(ctx, [opened], worker=uctx.worker, known={opened.id: known})
        sighting_id = opened.id
    else:
        (result,) = intake(ctx, [sighting_id], worker=uctx.worker, known={sighting_id: known})
    _forget(uctx, upload_id)
    return _settle(uctx, upload_id, sighting_id, result, actor)


def _sighting_of(session: Session, path: Path) -> str | None:
    """The sighting already opened for a partial file (the server stopped before noting it)."""
    found = session.exec(
        select(Sighting.id).where(Sighting.path_key == path_key(os.fsencode(path))).order_by(col(Sighting.received_at))
    ).first()
    return found


def _settle(uctx: UploadContext, upload_id: str, sighting_id: str, result: IntakeResult, actor: str) -> UploadState:
    """Record what intake made of the upload: its item (new or the one it duplicates), or why it failed."""
    if result.status in (SightingStatus.STORED, SightingStatus.DUPLICATE) and result.item:
        now = utcnow()
        with session_scope(uctx.engine) as session:
            row = session.get(Upload, upload_id, with_for_update=True)
            assert row is not None
            if row.status == UploadStatus.RECEIVING:
                row.status, row.item_id, row.error = UploadStatus.COMPLETED, result.item, None
                row.completed_at = row.updated_at = now
                session.add(row)
                with CustodyLog(session, actor) as log:
                    log.record(
                        "upload-completed",
                        f"upload:{upload_id}",
                        {
                            "item": result.item,
                            "sha256": result.sha256,
                            "size": result.size,
                            "outcome": result.status,  # stored, or a duplicate of an item kept already
                            "dock": row.dock_id,
                            "sighting": sighting_id,
                        },
                        tool=uctx.intake.tool,
                    )
            return replace(UploadState.of(row), outcome=result.status)
    # A store fault (the sighting stays pending, its file kept) or another worker holding the
    # sighting: the bytes stay and are taken in later. Anything else that is not an item failed.
    deferred = result.status in ("busy", SightingStatus.PENDING) or (
        result.status == SightingStatus.FAILED and result.disposition == Disposition.KEPT
    )
    if not deferred:
        return _failed(uctx, upload_id, result.error or "not taken in", actor)
    raise TransientError(
        f"upload {upload_id}: received, but not taken in yet ({result.error or result.status}); "
        "it is taken in once the store can take it; ask again later"
    )


def _forget(uctx: UploadContext, upload_id: str) -> None:
    if uctx.read_back is not None:
        uctx.read_back.forget(upload_id)


def _failed(uctx: UploadContext, upload_id: str, reason: str, actor: str) -> UploadState:
    _forget(uctx, upload_id)
    with session_scope(uctx.engine) as session:
        row = session.get(Upload, upload_id, with_for_update=True)
        assert row is not None
        if row.status == UploadStatus.RECEIVING:
            row.status, row.error = UploadStatus.FAILED, reason
            row.completed_at = row.updated_at = utcnow()
            session.add(row)
            with CustodyLog(session, actor) as log:
                log.record(
                    "upload-failed",
                    f"upload:{upload_id}",
                    {"reason": reason, "dock": row.dock_id, "original_name": row.original_name},
                    tool=uctx.intake.tool,
                )
        return UploadState.of(row)


# ------------------------------------------------------------------------------------- termination
def terminate_upload(uctx: UploadContext, *, viewer: Viewer, upload_id: str) -> None:
    """End the viewer's incomplete upload: its partial file removed, ``upload-terminated``
    recorded. An upload already taken in cannot be ended (:class:`ConflictError`)."""
    with session_scope(uctx.engine) as session:
        row = _live(uctx, session, viewer, upload_id, lock=True)
        if row.status != UploadStatus.RECEIVING or row.sighting_id is not None:
            raise ConflictError(f"upload {row.id} is {row.status} already and can no longer be ended")
        path = uctx.part_path(row.id)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW) if path.exists() else None
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise UploadBusy(row.id, "a piece is being written to it; try again once it is done") from None
            _remove_part(path)
        finally:
            if fd is not None:
                os.close(fd)
        _forget(uctx, row.id)
        received = row.offset
        row.status, row.updated_at = UploadStatus.TERMINATED, utcnow()
        row.error = f"ended by its uploader with {received:,} of {row.length:,} bytes received"
        session.add(row)
        with CustodyLog(session, viewer.name) as log:
            log.record(
                "upload-terminated",
                f"upload:{row.id}",
                {"dock": row.dock_id, "received": received, "length": row.length, "original_name": row.original_name},
                tool=uctx.intake.tool,
            )


# ---------------------------------------------------------------------------------- the reconciler
@dataclass(frozen=True)
class UploadSweep:
    """What one pass over the uploads did: incomplete ones removed after lying idle, and received
    ones taken in that no request had finished (the server stopped in between)."""

    expired: tuple[str, ...]
    finished: tuple[str, ...]


def sweep_uploads(uctx: UploadContext, *, limit: int = 500) -> UploadSweep:
    """Remove the incomplete uploads whose expiry has passed (each logged and recorded as
    ``upload-expired``), and take in the uploads received in full a while ago but never taken in."""
    now = utcnow()
    grace = now - timedelta(seconds=uctx.intake.lease_seconds)
    with session_scope(uctx.engine) as session:
        idle = session.exec(
            select(Upload)
            .where(Upload.status == UploadStatus.RECEIVING, col(Upload.expires_at) <= now)
            .order_by(col(Upload.expires_at))
            .limit(limit)
        ).all()
        expired = []
        for row in idle:
            if row.offset >= row.length:
                continue  # received in full: taken in below, never thrown away
            logger.warning(
                "upload %s (%s, dock %s) lay idle since %s with %d of %d bytes: removed",
                row.id,
                row.original_name,
                row.dock_id,
                iso(row.updated_at),
                row.offset,
                row.length,
            )
            _expire(uctx, session, row, uctx.intake.actor)
            expired.append(row.id)
        received = session.exec(
            select(Upload.id)
            .where(
                Upload.status == UploadStatus.RECEIVING,
                col(Upload.offset) >= col(Upload.length),
                col(Upload.updated_at) <= grace,
            )
            .limit(limit)
        ).all()
    finished = []
    for upload_id in received:
        try:
            finish_upload(uctx, upload_id=upload_id, actor=uctx.intake.actor)
        except TransientError as exc:
            logger.warning("upload %s: not taken in yet: %s", upload_id, exc)
            continue
        finished.append(upload_id)
    return UploadSweep(tuple(expired), tuple(finished))
