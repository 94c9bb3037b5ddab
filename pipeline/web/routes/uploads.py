"""Resumable uploads over HTTP, tus 1.0 (https://tus.io/protocols/resumable-upload), for docks,
recorders and custodians; the work is :mod:`pipeline.ingest.uploads`'s, this module speaks HTTP:

- ``OPTIONS /api/v1/uploads`` (no credentials): the version, extensions (``creation``,
  ``creation-with-upload``, ``checksum``, ``termination``, ``expiration``), checksum algorithms
  (``sha256``) and ``Tus-Max-Size``;
- ``POST /api/v1/uploads`` (``Upload-Length``, ``Upload-Metadata`` with ``filename``, ``sha256``,
  ``dock``, ``type``; a body of type ``application/offset+octet-stream`` is its first piece): 201
  with ``Location``, ``Upload-Expires`` (and ``Upload-Offset`` after a first piece);
- ``HEAD /api/v1/uploads/{id}``: ``Upload-Offset``, ``Upload-Length``, ``Upload-Expires``;
- ``PATCH /api/v1/uploads/{id}`` (``Upload-Offset``, optional ``Upload-Checksum: sha256 …``): 204
  with the new ``Upload-Offset``;
- ``DELETE /api/v1/uploads/{id}``: 204, the partial file removed.

Once an upload is taken in, its last answer and every ``HEAD`` carry ``Evidence-Item: ID`` (the new
item, or the one it duplicates; the answer that took it in says which in ``Evidence-Status``) or
``Evidence-Error: TEXT``. Every answer carries ``Tus-Resumable: 1.0.0``. Docks' tokens and
custodians may upload; a signed-in browser sends its ``X-CSRF-Token`` with every request that
changes something. An upload is its uploader's only:
to anyone else it does not exist (404).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.utils import format_datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import SightingStatus, UploadStatus
from pipeline.catalog.viewer import Viewer
from pipeline.errors import (
    ConflictError,
    ForbiddenError,
    InvalidValueError,
    NotFoundError,
    PipelineError,
    SystemFault,
    describe,
)
from pipeline.ingest.receiving import Receiving
from pipeline.ingest.uploads import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    UPLOADERS,
    ChecksumMismatch,
    InsufficientStorage,
    OffsetMismatch,
    TooManyUploads,
    UnsupportedChecksum,
    UploadBusy,
    UploadContext,
    UploadGone,
    UploadState,
    UploadTooLarge,
    create_upload,
    declared,
    finish_upload,
    open_piece,
    parse_checksum,
    parse_metadata,
    terminate_upload,
    upload_context,
    upload_state,
)
from pipeline.settings import Settings
from pipeline.web.csrf import HEADER, token_is_valid
from pipeline.web.deps import principal, stage_queue

log = logging.getLogger("evidence.web")
router = APIRouter(prefix="/api/v1", tags=["uploads"])

OFFSET_STREAM = "application/offset+octet-stream"
EXTENSIONS = "creation,creation-with-upload,checksum,termination,expiration"
BUFFER = 256 << 10  # bytes gathered from the request before they are queued to be written and hashed
PREFIX = "/api/v1/uploads"
T = TypeVar("T")


class BadRequest(InvalidValueError):
    """A tus header missing or malformed (400)."""


class VersionUnsupported(PipelineError):
    """A request for a version of tus other than 1.0.0 (412)."""


class UnsupportedMedia(PipelineError):
    """A body of another type than ``application/offset+octet-stream`` (415)."""


# The statuses of the upload service's refusals (most derived first); tus names 460 for a checksum
# that does not match.
STATUSES: tuple[tuple[type[PipelineError], int], ...] = (
    (VersionUnsupported, 412),
    (UnsupportedMedia, 415),
    (ChecksumMismatch, 460),
    (UnsupportedChecksum, 400),
    (OffsetMismatch, 409),
    (UploadBusy, 409),
    (UploadTooLarge, 413),
    (UploadGone, 410),
    (InsufficientStorage, 507),
    (TooManyUploads, 429),
    (InvalidValueError, 400),
    (NotFoundError, 404),
    (ForbiddenError, 403),
    (ConflictError, 409),
    (SystemFault, 503),
)


def tus_headers(**more: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **more}


def refuse(request: Request, exc: PipelineError, **more: str) -> Response:
    """The answer to a refused request: its status, ``{"detail", "error"}`` (no body to HEAD)."""
    status = 500
    for cls, code in STATUSES:
        if isinstance(exc, cls):
            status = code
            break
    headers = tus_headers(**more)
    if isinstance(exc, VersionUnsupported):
        headers["Tus-Version"] = TUS_VERSION
    if isinstance(exc, OffsetMismatch):
        headers["Upload-Offset"] = str(exc.offset)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, describe(exc))
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return JSONResponse({"detail": describe(exc), "error": type(exc).__name__}, status_code=status, headers=headers)


# ------------------------------------------------------------------------------------ dependencies
def uploader(request: Request) -> Viewer:
    """Who uploads: a dock's token or a custodian (bearer token or signed-in browser,
    which must send its CSRF token with every change). 401 without credentials, 403 for others.
    The catalog is read in a transaction of its own, not held while a body streams in."""
    with session_scope(request.app.state.engine) as session:
        found = principal(request, session)
    if found is None:
        raise HTTPException(
            401,
            "sign in or send an API token (Authorization: Bearer …)",
            headers=tus_headers(**{"WWW-Authenticate": "Bearer"}),
        )
    if found.must_change_password:
        raise HTTPException(403, "the account must change its password first (/account/password)", tus_headers())
    if (
        found.web_session is not None
        and request.method not in ("HEAD", "OPTIONS")
        and not token_is_valid(request, found.web_session, request.headers.get(HEADER))
    ):
        refused = f"a signed-in browser sends its {HEADER} header with every upload request"
        raise HTTPException(403, refused, tus_headers())
    if not found.viewer.has(*UPLOADERS):
        raise HTTPException(403, "only docks and custodians may upload", tus_headers())
    return found.viewer


Uploader = Annotated[Viewer, Depends(uploader)]


def service_of(request: Request) -> UploadContext:
    """The upload service's context, made once per application."""
    found: UploadContext | None = getattr(request.app.state, "upload_context", None)
    if found is None:
        from pipeline.runtime import intake_context, process_name

        settings: Settings = request.app.state.settings
        found = upload_context(intake_context(settings), settings, worker=process_name("web"))
        request.app.state.upload_context = found
    return found


# --------------------------------------------------------------------------------------- helpers
def _check_version(request: Request) -> None:
    given = request.headers.get("tus-resumable")
    if given != TUS_VERSION:
        raise VersionUnsupported(f"Tus-Resumable: {TUS_VERSION} is required (given: {(given or 'none')[:20]})")


def _number(request: Request, name: str, *, required: bool = True) -> int | None:
    value = request.headers.get(name)
    if value is None:
        if required:
            raise BadRequest(f"the {name} header is required")
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise BadRequest(f"{name} must be a whole number of bytes")
    return int(value)


def _is_offset_stream(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == OFFSET_STREAM


def _expires(state: UploadState) -> dict[str, str]:
    if state.status != UploadStatus.RECEIVING:
        return {}
    return {"Upload-Expires": format_datetime(state.expires_at, usegmt=True)}


def _outcome(state: UploadState) -> dict[str, str]:
    """``Evidence-Item`` once catalogued (with ``Evidence-Status: stored`` or ``duplicate`` on the
    answer that took it in), ``Evidence-Error`` once failed (on one line, in ASCII)."""
    if state.status == UploadStatus.COMPLETED and state.item_id:
        found = {"Evidence-Item": state.item_id}
        return found | ({"Evidence-Status": state.outcome} if state.outcome else {})
    if state.status == UploadStatus.FAILED:
        text = (state.error or "failed").replace("\r", " ").replace("\n", " ")
        return {"Evidence-Error": text.encode("ascii", "backslashreplace").decode("ascii")[:1000]}
    return {}


async def _off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(call, *args, **kwargs)


async def _receive(request: Request, uctx: UploadContext, viewer: Viewer, upload_id: str, offset: int) -> UploadState:
    """Stream the request's body into the upload: each buffer is queued to be written by one thread
    and hashed by another while the next arrives (this loop waits only when they fall behind);
    flushed to disk and recorded at the end. A checksum that does not match leaves the offset as
    it was; a client gone half-way keeps what arrived, unless the piece had a checksum."""
    checksum = parse_checksum(request.headers.get("upload-checksum"))
    length = _number(request, "content-length", required=False)
    piece = await _off_loop(
        open_piece, uctx, viewer=viewer, upload_id=upload_id, offset=offset, checksum=checksum, content_length=length
    )
    receiving = Receiving(piece.write, piece.check)

    async def queue(buffers: list[bytes]) -> None:
        if not receiving.offer(buffers):
            await _off_loop(receiving.put, buffers)

    gathered: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            gathered.append(chunk)
            size += len(chunk)
            if size >= BUFFER:
                buffers, gathered, size = gathered, [], 0
                await queue(buffers)
        if gathered:
            await queue(gathered)
    except ClientDisconnect:
        if checksum is not None:  # a piece that cannot be checked is not kept
            await _off_loop(receiving.stop)
            await _off_loop(piece.abandon)
            raise
    except BaseException:
        await _off_loop(receiving.stop)  # never cut the file back under a running write
        await _off_loop(piece.abandon)
        raise
    try:
        await _off_loop(receiving.finish)
    except BaseException:
        await _off_loop(receiving.stop)
        await _off_loop(piece.abandon)
        raise
    return await _off_loop(piece.commit)


async def _finish(uctx: UploadContext, viewer: Viewer, state: UploadState) -> UploadState:
    """Take in an upload just received in full."""
    if state.status != UploadStatus.RECEIVING or not state.received:
        return state
    return await _off_loop(finish_upload, uctx.acting(viewer), upload_id=state.id, actor=viewer.name)


def _then_probe(request: Request, state: UploadState) -> BackgroundTask | None:
    """Probing of a new item, queued once the answer is sent (the client does not wait for the broker)."""
    if state.outcome == SightingStatus.STORED and state.item_id:
        return BackgroundTask(_queue_probe, request.app.state, state.item_id)
    return None


def _queue_probe(app_state: Any, item_id: str) -> None:
    """Hand a new item to the probe workers (derivatives follow); with the broker away the
    reconciler queues it later, as it does for every item whose stage is pending."""
    try:
        stage_queue(app_state).probe([item_id])
    except SystemFault as exc:
        log.warning("item %s: probing not queued (%s); the reconciler will queue it", item_id, exc)


# ----------------------------------------------------------------------------------------- routes
@router.options("/uploads", status_code=204, response_class=Response)
def discover(request: Request) -> Response:
    """What this server offers of tus: no credentials needed."""
    settings: Settings = request.app.state.settings
    return Response(
        status_code=204,
        headers=tus_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": EXTENSIONS,
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
                "Tus-Max-Size": str(settings.upload_max_bytes),
            }
        ),
    )


@router.post("/uploads", status_code=201, response_class=Response)
async def create(request: Request, viewer: Uploader) -> Response:
    """Make an upload (and, with a body, receive its first piece): 201 with its ``Location``."""
    uctx = service_of(request)
    state: UploadState | None = None
    try:
        _check_version(request)
        if request.headers.get("upload-defer-length") is not None:
            raise BadRequest("Upload-Defer-Length is not offered: send Upload-Length")
        length = _number(request, "upload-length")
        assert length is not None
        given = declared(parse_metadata(request.headers.get("upload-metadata")))
        with_body = _is_offset_stream(request)
        if not with_body and (_number(request, "content-length", required=False) or 0) > 0:
            raise UnsupportedMedia(f"a first piece is sent as {OFFSET_STREAM}")
        state = await _off_loop(create_upload, uctx.acting(viewer), viewer=viewer, length=length, given=given)
        headers = {"Location": f"{PREFIX}/{state.id}"}
        if with_body:
            state = await _receive(request, uctx, viewer, state.id, 0)
            headers["Upload-Offset"] = str(state.offset)
        state = await _finish(uctx, viewer, state)
    except PipelineError as exc:
        more = {"Location": f"{PREFIX}/{state.id}"} if state is not None else {}
        return refuse(request, exc, **more)
    headers.update(_expires(state), **_outcome(state))
    return Response(status_code=201, headers=tus_headers(**headers), background=_then_probe(request, state))


@router.head("/uploads/{upload_id}", response_class=Response)
def status(upload_id: str, request: Request, viewer: Uploader) -> Response:
    """How far the upload has come, and once taken in, its item (or why it failed)."""
    uctx = service_of(request)
    try:
        _check_version(request)
        state = upload_state(uctx, viewer=viewer, upload_id=upload_id)
    except PipelineError as exc:
        return refuse(request, exc)
    headers = {
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.length),
        "Cache-Control": "no-store",
        **_expires(state),
        **_outcome(state),
    }
    return Response(status_code=200, headers=tus_headers(**headers))


@router.patch("/uploads/{upload_id}", status_code=204, response_class=Response)
async def append(upload_id: str, request: Request, viewer: Uploader) -> Response:
    """Receive the next piece at ``Upload-Offset``: 204 with the new offset, the bytes on disk."""
    uctx = service_of(request)
    try:
        _check_version(request)
        if not _is_offset_stream(request):
            raise UnsupportedMedia(f"a piece is sent as Content-Type: {OFFSET_STREAM}")
        offset = _number(request, "upload-offset")
        assert offset is not None
        state = await _receive(request, uctx, viewer, upload_id, offset)
        state = await _finish(uctx, viewer, state)
    except ClientDisconnect:
        return Response(status_code=400, headers=tus_headers())  # nobody is listening any more
    except PipelineError as exc:
        return refuse(request, exc)
    headers = {"Upload-Offset": str(state.offset), **_expires(state), **_outcome(state)}
    return Response(status_code=204, headers=tus_headers(**headers), background=_then_probe(request, state))


@router.delete("/uploads/{upload_id}", status_code=204, response_class=Response)
def terminate(upload_id: str, request: Request, viewer: Uploader) -> Response:
    """End an incomplete upload: its bytes removed, the ending recorded."""
    uctx = service_of(request)
    try:
        _check_version(request)
        terminate_upload(uctx.acting(viewer), viewer=viewer, upload_id=upload_id)
    except PipelineError as exc:
        return refuse(request, exc)
    return Response(status_code=204, headers=tus_headers())
