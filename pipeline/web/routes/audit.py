"""The auditor's workplace (admins and auditors; the service layer refuses anyone else):
``GET /audit`` (the custody log, filtered, newest first, paged by event number), ``POST
/audit/verify`` (walk the hash chain, recorded as ``audit-verified``) and ``GET /audit/retrievals``
(who retrieved what); the same as JSON under ``/api/v1/audit/``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from pipeline.catalog.queries import LogPage, custody_log, local_day, retrievals, verify_log
from pipeline.custody import ChainReport
from pipeline.errors import InvalidValueError
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SettingsDep

router = APIRouter(tags=["audit"])

FIELD_LIMIT = 255  # longer filter values are cut before they are used or shown
PAGE_SIZE = 100

Text = Annotated[str, Query(max_length=10_000)]


def moment(value: str, settings: Settings, *, end: bool, what: str) -> datetime | None:
    """A date (YYYY-MM-DD) or ISO time typed in a filter, in the site's time zone unless it says
    otherwise; None when blank. With ``end`` a date means up to the end of that day."""
    value = value.strip()
    if not value:
        return None
    if len(value) > 40 or not value.isprintable():
        raise InvalidValueError(f"the {what} time must be a date (YYYY-MM-DD) or a date and time")
    try:
        return local_day(value, ZoneInfo(settings.timezone), end=end)
    except InvalidValueError:
        raise InvalidValueError(f"the {what} time must be a date (YYYY-MM-DD) or a date and time") from None


def event_number(value: str) -> int | None:
    """The ``before`` of a page link: a positive event number, None when blank."""
    value = value.strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18) or int(value) < 1:
        raise InvalidValueError("the page position must be an event number")
    return int(value)


def chain_json(report: ChainReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "events": report.events,
        "head": report.head,
        "broken_at": report.broken_at,
        "reason": report.reason,
    }


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    viewer: CurrentUser,
    session: DbSession,
    page: PageDep,
    settings: SettingsDep,
    user: Text = "",
    action: Text = "",
    item: Text = "",
    case: Text = "",
    since: Annotated[str, Query(alias="from", max_length=10_000)] = "",
    until: Annotated[str, Query(alias="to", max_length=10_000)] = "",
    before: Text = "",
) -> HTMLResponse:
    """The custody log with its filter form, newest first, a page at a time."""
    filters = {
        "user": user[:FIELD_LIMIT],
        "action": action[:FIELD_LIMIT],
        "item": item[:FIELD_LIMIT],
        "case": case[:FIELD_LIMIT],
        "from": since[:FIELD_LIMIT],
        "to": until[:FIELD_LIMIT],
    }
    problem: str | None = None
    found: LogPage | None = None
    try:
        start = moment(filters["from"], settings, end=False, what="from")
        end = moment(filters["to"], settings, end=True, what="to")
        position = event_number(before[:FIELD_LIMIT])
    except InvalidValueError as exc:
        problem, start, end, position = str(exc), None, None, None
    try:
        # Called even when a time cannot be read, so a viewer who may not read the log is refused first.
        found = custody_log(
            session,
            viewer=viewer,
            actor=filters["user"],
            action=filters["action"],
            item=filters["item"],
            case=filters["case"],
            since=start,
            until=end,
            limit=PAGE_SIZE,
            before_seq=position,
        )
    except InvalidValueError as exc:
        problem = problem or str(exc)
    if problem is not None:
        found = None
    context = {"filters": filters, "page": found, "problem": problem, "links": _links(filters)}
    return page.render("audit.html", context, status=422 if problem else 200)


def _links(filters: dict[str, str]) -> dict[str, str]:
    """The filters in force, for the next page's link (blank ones left out)."""
    return {key: value for key, value in filters.items() if value}


@router.post("/audit/verify", response_class=HTMLResponse)
def audit_verify(viewer: CurrentUser, form: CsrfForm, session: DbSession, page: PageDep) -> HTMLResponse:
    """Walk the custody log's hash chain; say whether it holds, its head and how many events."""
    report = verify_log(session, viewer=viewer, tool=TOOL)
    return page.render("audit_verify.html", {"report": report})


@router.get("/audit/retrievals", response_class=HTMLResponse)
def retrievals_page(
    viewer: CurrentUser,
    session: DbSession,
    page: PageDep,
    item: Text = "",
    user: Text = "",
    before: Text = "",
) -> HTMLResponse:
    """Who viewed, played or downloaded what: per item or per user."""
    filters = {"item": item[:FIELD_LIMIT], "user": user[:FIELD_LIMIT]}
    problem: str | None = None
    found: LogPage | None = None
    try:
        position = event_number(before[:FIELD_LIMIT])
    except InvalidValueError as exc:
        problem, position = str(exc), None
    try:
        found = retrievals(
            session, viewer=viewer, item=filters["item"], user=filters["user"], limit=PAGE_SIZE, before_seq=position
        )
    except InvalidValueError as exc:
        problem = problem or str(exc)
    if problem is not None:
        found = None
    context = {"filters": filters, "page": found, "problem": problem, "links": _links(filters)}
    return page.render("audit_retrievals.html", context, status=422 if problem else 200)


# ------------------------------------------------------------------------------------------- API
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/api/v1/audit/events")
def api_events(
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    user: Text = "",
    action: Text = "",
    item: Text = "",
    case: Text = "",
    since: Annotated[str, Query(alias="from", max_length=10_000)] = "",
    until: Annotated[str, Query(alias="to", max_length=10_000)] = "",
    limit: Limit = PAGE_SIZE,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The custody log, newest first: ``{"events": [...], "next_before": N | null}``; pass
    ``before=N`` for the next page. Times: ISO 8601, or dates, in the site's zone unless given."""
    found = custody_log(
        session,
        viewer=viewer,
        actor=user,
        action=action,
        item=item,
        case=case,
        since=moment(since, settings, end=False, what="from"),
        until=moment(until, settings, end=True, what="to"),
        limit=limit,
        before_seq=before,
    )
    return found.as_json()


@router.post("/api/v1/audit/verify")
def api_verify(viewer: CurrentUser, form: CsrfForm, session: DbSession) -> dict[str, object]:
    """Walk the hash chain: ``{"ok", "events", "head", "broken_at", "reason"}``; recorded as
    ``audit-verified``."""
    return chain_json(verify_log(session, viewer=viewer, tool=TOOL))


@router.get("/api/v1/audit/retrievals")
def api_retrievals(
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    item: Text = "",
    user: Text = "",
    since: Annotated[str, Query(alias="from", max_length=10_000)] = "",
    until: Annotated[str, Query(alias="to", max_length=10_000)] = "",
    limit: Limit = PAGE_SIZE,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The retrieval history of an item and/or by a user, newest first (paged as the events)."""
    found = retrievals(
        session,
        viewer=viewer,
        item=item,
        user=user,
        since=moment(since, settings, end=False, what="from"),
        until=moment(until, settings, end=True, what="to"),
        limit=limit,
        before_seq=before,
    )
    return found.as_json()
