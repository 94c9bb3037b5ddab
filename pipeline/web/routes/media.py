"""An item's content, served through the application (never a public file URL), each request a
supervised retrieval (:func:`pipeline.catalog.queries.media.retrieve`):

- ``GET /items/{id}/media/access``: the access copy, with HTTP byte ranges so a player can seek;
- ``GET /items/{id}/media/poster``, ``GET /items/{id}/media/sheet``: the poster, the contact sheet;
- ``GET /items/{id}/original?purpose=…`` and ``POST /items/{id}/original`` (a form with the CSRF
  token and a ``purpose`` field): the original, as an attachment;
- ``GET /api/v1/items/{id}/media/{what}`` (``access``, ``poster``, ``sheet``, ``original`` with
  ``?purpose=…``): the same for token clients.

Every answer is streamed from the store in chunks, carries the SHA-256 as its ``ETag`` and
``Cache-Control: private, no-store``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from pipeline.catalog.queries.media import Retrieval, What, ascii_name, retrieve
from pipeline.runtime import open_store
from pipeline.stage import TOOL
from pipeline.storage.local import LocalStore
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, SettingsDep

router = APIRouter(tags=["media"])

CHUNK = 256 * 1024
PURPOSE_LIMIT = 2000
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
Purpose = Annotated[str | None, Query(max_length=PURPOSE_LIMIT)]


def _store(settings: SettingsDep) -> LocalStore:
    store = open_store(settings)
    assert isinstance(store, LocalStore)
    return store


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The one range ``header`` asks for within ``size`` bytes, as (first, last) inclusive; None to
    send the whole body (no header, several ranges, or one that cannot be read); False when the
    range cannot be satisfied."""
    if not header or "," in header:
        return None
    found = _RANGE.match(header)
    if found is None:
        return None
    start, end = found.groups()
    if not start and not end:
        return None
    if not start:  # bytes=-n: the last n bytes
        length = int(end)
        if length == 0 or size == 0:
            return False
        return max(0, size - length), size - 1
    first = int(start)
    if end and int(end) < first:
        return None
    last = int(end) if end else size - 1
    if first >= size:
        return False
    return first, min(last, size - 1)


def _chunks(path: Path, first: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(first)
        left = length
        while left > 0:
            data = handle.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def _disposition(kind: str, found: Retrieval) -> str:
    """An RFC 6266 ``Content-Disposition``: an ASCII ``filename`` and the exact ``filename*``."""
    plain = ascii_name(found.download_name, fallback=found.item_id)
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(found.download_name, safe='')}"


def send(request: Request, found: Retrieval, *, attachment: bool = False) -> Response:
    """``found`` as the answer to ``request``: 304 when the browser has it (``If-None-Match``), one
    byte range (206) when asked for, 416 for a range past the end, the whole body otherwise."""
    etag = f'"{found.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "Content-Disposition": _disposition("attachment" if attachment else "inline", found),
    }
    wanted = request.headers.get("if-none-match")
    if wanted and (wanted.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in wanted.split(",")]):
        return Response(status_code=304, headers=headers)
    asked = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        asked = None  # the copy the browser holds is not this one: send it whole
    span = byte_range(asked, found.size)
    if span is False:
        headers["Content-Range"] = f"bytes */{found.size}"
        return Response(status_code=416, headers=headers)
    if span is None or span is True:
        first, length, status = 0, found.size, 200
    else:
        first, last = span
        length, status = last - first + 1, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _chunks(found.path, first, length), status_code=status, media_type=found.media_type, headers=headers
    )


def _retrieve(
    session: DbSession,
    viewer: CurrentUser,
    settings: SettingsDep,
    ident: str,
    what: What,
    purpose: str | None,
    via: str,
) -> Retrieval:
    found = retrieve(
        session,
        viewer=viewer,
        store=_store(settings),
        ident=ident,
        what=what,
        purpose=purpose,
        via=via,
        tool=TOOL,
    )
    # Recorded before the first byte leaves, and the catalog's lock let go while the file streams.
    session.commit()
    return found


@router.get("/items/{ident}/media/access", response_model=None)
def access_copy(
    ident: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    purpose: Purpose = None,
) -> Response:
    """The access copy (video or audio), in byte ranges when asked."""
    return send(request, _retrieve(session, viewer, settings, ident, "access", purpose, "web"))


@router.get("/items/{ident}/media/poster", response_model=None)
def poster(
    ident: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    purpose: Purpose = None,
) -> Response:
    """The poster frame."""
    return send(request, _retrieve(session, viewer, settings, ident, "poster", purpose, "web"))


@router.get("/items/{ident}/media/sheet", response_model=None)
def contact_sheet(
    ident: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    purpose: Purpose = None,
) -> Response:
    """The contact sheet."""
    return send(request, _retrieve(session, viewer, settings, ident, "sheet", purpose, "web"))


@router.get("/items/{ident}/original", response_model=None)
def original(
    ident: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    purpose: Purpose = None,
) -> Response:
    """The original, as an attachment, for the purpose given (or stated earlier in the session)."""
    found = _retrieve(session, viewer, settings, ident, "original", purpose, "web")
    return send(request, found, attachment=True)


@router.post("/items/{ident}/original", response_model=None)
def original_form(
    ident: str, request: Request, viewer: CurrentUser, session: DbSession, settings: SettingsDep, form: CsrfForm
) -> Response:
    """The original, for the purpose posted with the item page's download form."""
    given = form.get("purpose")
    purpose = given[:PURPOSE_LIMIT] if isinstance(given, str) else None
    found = _retrieve(session, viewer, settings, ident, "original", purpose, "web")
    return send(request, found, attachment=True)


@router.get("/api/v1/items/{ident}/media/{what}", response_model=None)
def api_media(
    ident: str,
    what: What,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    purpose: Purpose = None,
) -> Response:
    """``access`` (in byte ranges when asked), ``poster``, ``sheet`` or ``original`` (an attachment;
    needs ``purpose``)."""
    found = _retrieve(session, viewer, settings, ident, what, purpose, "api")
    return send(request, found, attachment=what == "original")
