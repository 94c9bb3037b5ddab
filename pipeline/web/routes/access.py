"""Access requests for secret records (ACCESS.md): ``GET /access`` (the requests the viewer may
see, with their status), ``GET /access/new?item=ID|case=N`` and ``POST /access`` (ask, with a
purpose), ``POST /access/{id}/approve`` (until when, a note) and ``POST /access/{id}/deny``; the
same as JSON under ``/api/v1/access-requests``. Who may decide is the service layer's to say
(:mod:`pipeline.catalog.access_requests`): an approver who is not the requester."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import FormData

from pipeline.catalog.access_requests import (
    AccessRequestView,
    approve_access,
    deny_access,
    list_access_requests,
    request_access,
)
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, NotFoundError
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SettingsDep
from pipeline.web.routes.audit import moment

router = APIRouter(tags=["access"])

PURPOSE_LIMIT = 2000
NOTE_LIMIT = 2000
TARGET_LIMIT = 255

Text = Annotated[str, Query(max_length=10_000)]


def request_id(value: str) -> str:
    """An access request's ID as a path gives it; anything that cannot be one is not found."""
    if not (0 < len(value) <= 26 and value.isascii() and value.isalnum()):
        raise NotFoundError("no such access request")
    return value


def target_value(value: str | None, what: str) -> str | None:
    """An item ID or case number as typed (None when blank)."""
    value = (value or "").strip()
    if not value:
        return None
    if len(value) > TARGET_LIMIT or not value.isprintable():
        raise InvalidValueError(f"the {what} must be printable and at most {TARGET_LIMIT} characters")
    return value


def field(form: FormData, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def until_of(value: str, settings: Settings) -> datetime:
    """The end of a grant's window as typed (a date means to the end of that day)."""
    found = moment(value, settings, end=True, what="until")
    if found is None:
        raise InvalidValueError("say until when access is granted")
    return found


def ask(session: DbSession, viewer: Viewer, item: str | None, case: str | None, purpose: str) -> AccessRequestView:
    return request_access(
        session,
        viewer=viewer,
        item_id=target_value(item, "item"),
        case_number=target_value(case, "case"),
        purpose=purpose[:PURPOSE_LIMIT],
        tool=TOOL,
    )


# ----------------------------------------------------------------------------------------- pages
@router.get("/access", response_class=HTMLResponse)
def access_page(viewer: CurrentUser, session: DbSession, page: PageDep, status: Text = "") -> HTMLResponse:
    """The requests the viewer may see (their own; approvers and auditors all they are cleared
    for), newest first; an approver sees the forms to decide the pending ones of others."""
    wanted = status.strip()[:20] or None
    requests = list_access_requests(session, viewer=viewer, status=wanted)
    return page.render("access.html", {"requests": requests, "status": wanted or ""})


@router.get("/access/new", response_class=HTMLResponse)
def new_request_form(viewer: CurrentUser, page: PageDep, item: Text = "", case: Text = "") -> HTMLResponse:
    """The form to ask for access to an item or a case, with a purpose."""
    values = {"item": item[:TARGET_LIMIT], "case": case[:TARGET_LIMIT], "purpose": ""}
    return page.render("access_new.html", {"values": values, "problem": None})


@router.post("/access", response_model=None)
def new_request(viewer: CurrentUser, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Ask for access; back to the list, or the form again with what cannot be used."""
    values = {
        "item": field(form, "item", TARGET_LIMIT),
        "case": field(form, "case", TARGET_LIMIT),
        "purpose": field(form, "purpose", PURPOSE_LIMIT),
    }
    try:
        ask(session, viewer, values["item"], values["case"], values["purpose"])
    except InvalidValueError as exc:
        return page.render("access_new.html", {"values": values, "problem": str(exc)}, status=422)
    return RedirectResponse("/access", status_code=303)


@router.post("/access/{ident}/approve", response_model=None)
def approve(
    ident: str, viewer: CurrentUser, form: CsrfForm, session: DbSession, settings: SettingsDep
) -> RedirectResponse:
    """Grant a pending request until the time given."""
    until = until_of(field(form, "until", 40), settings)
    approve_access(
        session,
        viewer=viewer,
        request_id=request_id(ident),
        until=until,
        note=field(form, "note", NOTE_LIMIT),
        tool=TOOL,
    )
    return RedirectResponse("/access", status_code=303)


@router.post("/access/{ident}/deny", response_model=None)
def deny(ident: str, viewer: CurrentUser, form: CsrfForm, session: DbSession) -> RedirectResponse:
    """Deny a pending request."""
    deny_access(session, viewer=viewer, request_id=request_id(ident), note=field(form, "note", NOTE_LIMIT), tool=TOOL)
    return RedirectResponse("/access", status_code=303)


# ------------------------------------------------------------------------------------------- API
class NewRequest(BaseModel):
    item: str | None = Field(default=None, max_length=TARGET_LIMIT)
    case: str | None = Field(default=None, max_length=TARGET_LIMIT)
    purpose: str = Field(max_length=PURPOSE_LIMIT)


class Approval(BaseModel):
    until: str = Field(max_length=40, description="ISO 8601 (in the site's zone unless it says), or a date")
    note: str | None = Field(default=None, max_length=NOTE_LIMIT)


class Denial(BaseModel):
    note: str | None = Field(default=None, max_length=NOTE_LIMIT)


@router.get("/api/v1/access-requests")
def api_requests(viewer: CurrentUser, session: DbSession, status: Text = "") -> dict[str, Any]:
    """``{"requests": [...]}``: the requests the viewer may see, newest first."""
    found = list_access_requests(session, viewer=viewer, status=status.strip()[:20] or None)
    return {"requests": [r.as_json() for r in found]}


@router.post("/api/v1/access-requests", status_code=201, response_model=None)
def api_new_request(body: NewRequest, viewer: CurrentUser, form: CsrfForm, session: DbSession) -> JSONResponse:
    """Ask for access to ``item`` or ``case`` for ``purpose``; the request as made (201)."""
    made = ask(session, viewer, body.item, body.case, body.purpose)
    return JSONResponse(made.as_json(), status_code=201)


@router.post("/api/v1/access-requests/{ident}/approve")
def api_approve(
    ident: str, body: Approval, viewer: CurrentUser, form: CsrfForm, session: DbSession, settings: SettingsDep
) -> dict[str, object]:
    """Grant a pending request until ``until``; the request as decided."""
    decided = approve_access(
        session,
        viewer=viewer,
        request_id=request_id(ident),
        until=until_of(body.until, settings),
        note=body.note,
        tool=TOOL,
    )
    return decided.as_json()


@router.post("/api/v1/access-requests/{ident}/deny")
def api_deny(ident: str, body: Denial, viewer: CurrentUser, form: CsrfForm, session: DbSession) -> dict[str, object]:
    """Deny a pending request; the request as decided."""
    return deny_access(session, viewer=viewer, request_id=request_id(ident), note=body.note, tool=TOOL).as_json()
