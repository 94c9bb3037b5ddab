"""Disc packages on the web:

- ``POST /cases/{number}/packages`` (CSRF; ``media``, ``with_access_copies``, ``purpose``): record a
  request for the case's records and queue it for a worker; when the broker cannot be reached the
  request stays recorded and the reconciler queues it later (a notice, not an error);
- ``GET /packages/{id}``: its status, each disc with size, SHA-256 and verification, refreshing
  itself while the discs are being made;
- ``GET /packages/{id}/discs/{n}/image`` (byte ranges, as an attachment), ``…/sha256`` and
  ``…/description``: each a supervised retrieval (a ``downloaded`` custody event);
- ``POST /packages/{id}/verify``: read every image back again and show what was found;
- the API: ``POST /api/v1/cases/{number}/packages``, ``GET /api/v1/packages``,
  ``GET /api/v1/packages/{id}``, ``GET /api/v1/packages/{id}/discs/{n}/{what}`` and
  ``POST /api/v1/packages/{id}/verify``.

Only a viewer who may know a package exists gets anything of it; for anyone else it is not found.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from pipeline.catalog.models import PackageStatus
from pipeline.catalog.queries import incomplete_items, list_packages
from pipeline.catalog.queries.media import Retrieval, ascii_name
from pipeline.catalog.queries.packages import PackageSummary
from pipeline.catalog.viewer import Viewer
from pipeline.errors import NotFoundError, TransientError
from pipeline.package.retrieval import DiscDownload, download_disc, reverify_package, visible_package
from pipeline.package.stage import request_package
from pipeline.package.verify import PackageCheck
from pipeline.runtime import package_context
from pipeline.settings import Settings
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SettingsDep, stage_queue
from pipeline.web.routes.cases import case_url
from pipeline.web.routes.media import PURPOSE_LIMIT, send

router = APIRouter(tags=["packages"])

BUILDING = (PackageStatus.REQUESTED, PackageStatus.BUILDING)
NOTICES = ("queued", "queued-later")


def summary(session: Session, viewer: Viewer, package_id: str) -> PackageSummary:
    """The package as the viewer may see it; :class:`NotFoundError` when they may not know of it."""
    package = visible_package(session, package_id=package_id, viewer=viewer)
    for found in list_packages(session, viewer=viewer, case_number=package.case_number):
        if found.id == package.id:
            return found
    raise NotFoundError(f"no package {package_id!r}")


def enqueue(state: Any, package_id: str) -> bool:
    """Queue the package for a worker (through ``state``, the application's); False when the broker
    cannot be reached (the request stays recorded and the reconciler queues it)."""
    try:
        stage_queue(state).package([package_id])
    except TransientError:
        return False
    return True


def _request(
    state: Any, viewer: Viewer, number: str, media: str, with_access_copies: bool, purpose: str | None
) -> tuple[str, bool]:
    settings: Settings = state.settings
    package_id = request_package(
        package_context(settings),
        viewer=viewer,
        case_number=number,
        media=media or settings.package_media,
        with_access_copies=with_access_copies,
        purpose=(purpose or "").strip()[:PURPOSE_LIMIT] or None,
    )
    return package_id, enqueue(state, package_id)


def _field(form: CsrfForm, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/cases/{number:path}/packages")
def request_page(number: str, request: Request, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    session.commit()  # the request is recorded in a transaction of its own
    package_id, queued = _request(
        request.app.state,
        viewer,
        number,
        _field(form, "media"),
        _field(form, "with_access_copies") in ("1", "on", "true"),
        _field(form, "purpose"),
    )
    return RedirectResponse(f"/packages/{package_id}?notice={'queued' if queued else 'queued-later'}", status_code=303)


def _render(
    page: PageDep, session: Session, viewer: Viewer, settings: Settings, package_id: str, **extra: object
) -> Response:
    found = summary(session, viewer, package_id)
    context = {
        "package": found,
        "building": found.status in BUILDING,
        "incomplete": incomplete_items(session, package_id=package_id, viewer=viewer),
        "case_url": case_url,
        "notice": None,
        "checks": None,
        **extra,
    }
    return page.render("package.html", context)


@router.get("/packages/{package_id}", response_class=HTMLResponse)
def package_page(
    package_id: str,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    page: PageDep,
    notice: str | None = None,
) -> Response:
    return _render(page, session, viewer, settings, package_id, notice=notice if notice in NOTICES else None)


@router.post("/packages/{package_id}/verify", response_class=HTMLResponse)
def verify_page(
    package_id: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    page: PageDep,
    form: CsrfForm,
) -> Response:
    session.commit()  # each check is recorded in a transaction of its own
    checks = reverify_package(request.app.state.engine, package_id=package_id, viewer=viewer)
    return _render(page, session, viewer, settings, package_id, checks=checks)


def _send(request: Request, found: DiscDownload) -> Response:
    if found.path is not None:
        retrieval = Retrieval(
            item_id=found.package_id,
            what=found.what,
            path=found.path,
            media_type=found.media_type,
            size=found.size,
            sha256=found.sha256,
            download_name=found.download_name,
        )
        return send(request, retrieval, attachment=True)
    plain = ascii_name(found.download_name, fallback=f"{found.package_id}-{found.disc}-{found.what}")
    return Response(
        found.content or b"",
        media_type=found.media_type,
        headers={
            "ETag": f'"{found.sha256}"',
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'attachment; filename="{plain}"',
        },
    )


@router.get("/packages/{package_id}/discs/{index}/{what}")
@router.get("/api/v1/packages/{package_id}/discs/{index}/{what}")
def disc_download(
    package_id: str, index: int, what: str, request: Request, viewer: CurrentUser, session: DbSession
) -> Response:
    found = download_disc(session, package_id=package_id, index=index, what=what, viewer=viewer)
    session.commit()  # the retrieval is recorded before the bytes go out
    return _send(request, found)


class PackageRequest(BaseModel):
    media: str | None = Field(default=None, max_length=32)
    with_access_copies: bool = False
    purpose: str | None = Field(default=None, max_length=PURPOSE_LIMIT)


@router.post("/api/v1/cases/{number:path}/packages", status_code=202)
def request_api(
    number: str, body: PackageRequest, request: Request, viewer: CurrentUser, session: DbSession, form: CsrfForm
) -> dict[str, object]:
    session.commit()  # the request is recorded in a transaction of its own
    package_id, queued = _request(
        request.app.state, viewer, number, body.media or "", body.with_access_copies, body.purpose
    )
    return {"package": package_id, "case": number, "status": "queued" if queued else "requested", "queued": queued}


@router.get("/api/v1/packages")
def packages_api(
    viewer: CurrentUser, session: DbSession, case: Annotated[str | None, Query(max_length=100)] = None
) -> dict[str, object]:
    found = list_packages(session, viewer=viewer, case_number=case)
    return {"count": len(found), "packages": [p.as_json() for p in found]}


@router.get("/api/v1/packages/{package_id}")
def package_api(package_id: str, viewer: CurrentUser, session: DbSession) -> dict[str, object]:
    found = summary(session, viewer, package_id)
    lacking = incomplete_items(session, package_id=package_id, viewer=viewer)
    return {**found.as_json(), "incomplete": [entry.as_json() for entry in lacking]}


@router.post("/api/v1/packages/{package_id}/verify")
def verify_api(
    package_id: str, request: Request, viewer: CurrentUser, session: DbSession, form: CsrfForm
) -> dict[str, object]:
    session.commit()  # each check is recorded in a transaction of its own
    checks: list[PackageCheck] = reverify_package(request.app.state.engine, package_id=package_id, viewer=viewer)
    return {"package": package_id, "ok": all(c.ok for c in checks), "discs": [c.as_json() for c in checks]}
