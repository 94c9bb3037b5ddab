"""Cases on the web: ``GET /cases`` (the cases the viewer may know of, with target, class and how
many records and packages each has), ``GET /cases/{number}`` (its records, those of other cases of
the same enforcement target, its disc packages, and for custodians the forms
``POST /cases/{number}/target``, ``/classification`` and ``/handlers``), and the API
``GET /api/v1/cases`` and ``GET /api/v1/cases/{number}``.

Which cases and records a viewer may see, and who may change them, is the catalog's to decide."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from pipeline.catalog.cases import SETTABLE, assign_case_member, remove_case_member, set_case_target, set_classification
from pipeline.catalog.people import Role
from pipeline.catalog.queries import list_packages
from pipeline.catalog.queries.cases import case_detail, case_handlers, list_cases, related_cases
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError
from pipeline.package.media import MEDIA_NAMES
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SettingsDep

router = APIRouter(tags=["cases"])

NOTICES = ("target", "classified", "handlers")  # ?notice=… after a form, shown as ``case.notice.<name>``


def case_url(number: str, notice: str | None = None) -> str:
    return f"/cases/{quote(number, safe='')}" + (f"?notice={notice}" if notice else "")


def _case_context(session: Session, viewer: Viewer, number: str) -> dict[str, object]:
    detail = case_detail(session, number=number, viewer=viewer)
    custodian = viewer.has(Role.CUSTODIAN)
    return {
        "case": detail,
        "related": related_cases(session, number=number, viewer=viewer),
        "packages": list_packages(session, viewer=viewer, case_number=number),
        "handlers": case_handlers(session, number=number, viewer=viewer) if custodian else [],
        "can_edit": custodian and not detail.withheld,
        "can_request": viewer.has(Role.CUSTODIAN, Role.CASE_HANDLER) and not detail.withheld,
        "classes": SETTABLE,
        "media_names": MEDIA_NAMES,
    }


@router.get("/cases", response_class=HTMLResponse)
def cases_page(viewer: CurrentUser, session: DbSession, page: PageDep) -> Response:
    return page.render("cases.html", {"cases": list_cases(session, viewer=viewer), "case_url": case_url})


@router.get("/cases/{number:path}", response_class=HTMLResponse)
def case_page(
    number: str,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    page: PageDep,
    notice: str | None = None,
) -> Response:
    context = _case_context(session, viewer, number)
    shown = notice if notice in NOTICES else None
    return page.render(
        "case.html",
        {
            **context,
            "notice": shown,
            "case_url": case_url,
            "default_media": settings.package_media,
        },
    )


def _field(form: CsrfForm, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/cases/{number:path}/target")
def set_target(number: str, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    set_case_target(session, number=number, target=_field(form, "target"), viewer=viewer, tool=TOOL)
    return RedirectResponse(case_url(number, "target"), status_code=303)


@router.post("/cases/{number:path}/classification")
def classify(number: str, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    set_classification(
        session, viewer=viewer, case_number=number, classification=_field(form, "classification"), tool=TOOL
    )
    return RedirectResponse(case_url(number, "classified"), status_code=303)


@router.post("/cases/{number:path}/handlers")
def handlers(number: str, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    user = _field(form, "user").strip()
    action = _field(form, "action")
    if not user:
        raise InvalidValueError("name the case handler")
    if action == "remove":
        remove_case_member(session, viewer=viewer, case_number=number, user_name=user, tool=TOOL)
    elif action == "add":
        assign_case_member(session, viewer=viewer, case_number=number, user_name=user, tool=TOOL)
    else:
        raise InvalidValueError("action is add or remove")
    return RedirectResponse(case_url(number, "handlers"), status_code=303)


@router.get("/api/v1/cases")
def cases_api(viewer: CurrentUser, session: DbSession) -> dict[str, object]:
    found = list_cases(session, viewer=viewer)
    return {"count": len(found), "cases": [case.as_json() for case in found]}


@router.get("/api/v1/cases/{number:path}")
def case_api(number: str, viewer: CurrentUser, session: DbSession) -> dict[str, object]:
    detail = case_detail(session, number=number, viewer=viewer)
    return {
        **detail.as_json(),
        "related": [other.as_json() for other in related_cases(session, number=number, viewer=viewer)],
        "packages": [p.as_json() for p in list_packages(session, viewer=viewer, case_number=number)],
    }
