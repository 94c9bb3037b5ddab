"""The statistics and supervision report on the web (admins, auditors and custodians; the report
itself refuses anyone else): ``GET /reports`` (the page: period and grouping, figures, charts drawn
on the server as SVG, links to the downloads) and ``GET /api/v1/reports?format=json|csv`` (the same
figures as one JSON object, or CSV with a row per group). Every showing is recorded in the custody
log by :func:`pipeline.reports.record_report_view`; what the figures count is the report's to
decide (:mod:`pipeline.reports.figures`)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pipeline.catalog.access import require_role
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError
from pipeline.reports import (
    REPORT_READERS,
    Grouping,
    Period,
    Report,
    build_report,
    record_report_view,
    typed_day,
)
from pipeline.reports.render import as_csv, charts, group_label
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.deps import CurrentUser, DbSession, Lang, PageDep, SettingsDep

router = APIRouter(tags=["reports"])

Since = Annotated[str, Query(alias="from", max_length=40)]
Until = Annotated[str, Query(alias="to", max_length=40)]
By = Annotated[Literal["officer", "dock", "case", "target", "month"], Query()]


def require_reader(viewer: Viewer) -> None:
    """:class:`ForbiddenError` (the 403 page) unless the viewer may read reports."""
    require_role(viewer, *REPORT_READERS, doing="read reports")


def _period(since: str, until: str, settings: Settings) -> Period:
    since, until = since.strip(), until.strip()  # blank: open on that side
    start = typed_day(since, "from") if since else None
    end = typed_day(until, "to") if until else None
    return Period(start, end, settings.zone)


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    viewer: CurrentUser,
    session: DbSession,
    page: PageDep,
    settings: SettingsDep,
    t: Lang,
    since: Since = "",
    until: Until = "",
    by: By = "officer",
) -> HTMLResponse:
    """The report of a period with its charts and tables, in the reader's language."""
    require_reader(viewer)  # before anything typed is read
    filters = {"from": since.strip(), "to": until.strip(), "by": by}
    problem: str | None = None
    found: Report | None = None
    try:
        found = build_report(session, viewer=viewer, period=_period(since, until, settings), by=by)
    except InvalidValueError as exc:
        problem = str(exc)
    if found is not None:
        record_report_view(session, viewer=viewer, report=found, form="html", via="web", tool=TOOL)

    def say(key: str) -> str:
        return t(f"reports.{key}")

    context = {
        "filters": filters,
        "groupings": [g.value for g in Grouping],
        "report": found,
        "figures": found.as_json() if found else None,
        "charts": charts(found, say) if found else None,
        "problem": problem,
        "label": lambda key, withheld: group_label(key, withheld, say),
        "downloads": {
            form: "/api/v1/reports?" + urlencode({**{k: v for k, v in filters.items() if v}, "format": form})
            for form in ("csv", "json")
        },
    }
    return page.render("reports.html", context, status=422 if problem else 200)


@router.get("/api/v1/reports")
def api_report(
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    since: Since = "",
    until: Until = "",
    by: By = "officer",
    form: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response:
    """The report as one JSON object (keys documented in README) or as CSV (a header row, then a
    row per group), as a download. Days: YYYY-MM-DD, the site's local days of receipt."""
    require_reader(viewer)
    found = build_report(session, viewer=viewer, period=_period(since, until, settings), by=by)
    record_report_view(session, viewer=viewer, report=found, form=form, via="api", tool=TOOL)
    name = f"report-{found.period.start or 'start'}-{found.period.end or 'now'}-{found.by.value}.{form}"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    if form == "csv":
        return Response(as_csv(found), media_type="text/csv; charset=utf-8", headers=disposition)
    return JSONResponse(found.as_json(), headers=disposition)
