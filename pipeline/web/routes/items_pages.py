"""The custodian's pages of the catalog: ``GET /items`` (search, a page at a time),
``GET /queues`` (the review queues and their sizes), ``GET /items/{id}`` (one item's whole record,
a retrieval) and its forms: ``POST /items/{id}/facts``, ``/classification`` and ``/purpose``.

What the acting user may see or change is the catalog's to decide; the pages only leave out the
forms of a role that may not use them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from pipeline.catalog.cases import SETTABLE, set_classification
from pipeline.catalog.models import REQUIRED_FACTS
from pipeline.catalog.people import Role
from pipeline.catalog.queries import (
    COUNT_LIMIT,
    Cursor,
    ItemDetail,
    ItemPage,
    count_items,
    find_summary,
    item_detail,
    page_items,
)
from pipeline.catalog.viewer import Viewer
from pipeline.errors import InvalidValueError, PurposeRequiredError, WithheldError
from pipeline.probe.assign import assign_facts
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SettingsDep
from pipeline.web.pages import Page
from pipeline.web.search import CLASSES, KINDS, QUEUES, SearchForm, probe_ctx, queue_of

router = APIRouter(tags=["items"])

PAGE_SIZE = 50
NOTICES = ("facts", "classified")  # ?notice=… after a form, shown as ``item.notice.<name>``


@router.get("/items", response_class=HTMLResponse)
def search(request: Request, viewer: CurrentUser, session: DbSession, settings: SettingsDep, page: PageDep) -> Response:
    """The search form and a page of what it finds, with the total and links to the pages after
    and before; withheld items by ID and class only."""
    form = SearchForm.of(request.query_params)
    problem: str | None = None
    found: ItemPage | None = None
    try:
        filters = form.filters(settings.zone)
        token = request.query_params.get("cursor")
        cursor = Cursor.decode(token) if token else None
        found = page_items(session, viewer=viewer, filters=filters, cursor=cursor, limit=PAGE_SIZE)
    except InvalidValueError as exc:
        problem = str(exc)
    query = form.query()
    context = {
        "form": form,
        "found": found,
        "problem": problem,
        "query": query,
        "queue": queue_of(form),
        "facts": REQUIRED_FACTS,
        "kinds": KINDS,
        "classes": CLASSES,
    }
    return page.render("items.html", context, status=422 if problem else 200)


@router.get("/queues", response_class=HTMLResponse)
def queues(viewer: CurrentUser, session: DbSession, settings: SettingsDep, page: PageDep) -> Response:
    """Each review queue with the number of items in it the acting user may know exist, exact up
    to :data:`COUNT_LIMIT` ("1000+" beyond)."""
    sizes = []
    for queue in QUEUES:
        filters = queue.search.filters(settings.zone)
        size = count_items(session, viewer=viewer, filters=filters, at_most=COUNT_LIMIT)
        sizes.append((queue, str(size) if size <= COUNT_LIMIT else f"{COUNT_LIMIT}+"))
    return page.render("queues.html", {"queues": sizes})


def _item_page(
    page: Page,
    session: Session,
    request: Request,
    *,
    ident: str,
    viewer: Viewer,
    settings: Settings,
    purpose: str | None = None,
    queue: str = "",
) -> Response:
    """The item's page (the view recorded), or the page saying what it needs first: a purpose
    (``privacy``) or an approved access request (withheld)."""
    form = SearchForm.parse(queue)
    query = form.query()
    try:
        detail = item_detail(
            session,
            ident=ident,
            viewer=viewer,
            via="web",
            store=probe_ctx(request).store,
            tool=TOOL,
            purpose=purpose,
        )
    except WithheldError as exc:
        summary = find_summary(session, exc.item, viewer=viewer)
        return page.render("item_withheld.html", {"summary": summary}, status=403)
    except PurposeRequiredError as exc:
        summary = find_summary(session, exc.item, viewer=viewer)
        return page.render("item_purpose.html", {"summary": summary, "query": query, "asked": purpose is not None})
    notice = request.query_params.get("notice")
    context = {
        "detail": detail,
        "item": detail.summary,
        "can_edit": viewer.has(Role.CUSTODIAN),
        "facts": REQUIRED_FACTS,
        "classes": SETTABLE,
        "query": query,
        "queue": queue_of(form),
        "next_item": _next_in(session, viewer, settings, form, detail),
        "notice": notice if notice in NOTICES else None,
    }
    return page.render("item.html", context)


def _next_in(session: Session, viewer: Viewer, settings: Settings, form: SearchForm, detail: ItemDetail) -> str | None:
    """The ID of the item after this one in the search it was opened from, if any."""
    if not form.given:
        return None
    try:
        filters = form.filters(settings.zone)
    except InvalidValueError:
        return None
    found = page_items(session, viewer=viewer, filters=filters, cursor=Cursor.after(detail.summary), limit=1)
    return found.items[0].id if found.items else None


@router.get("/items/{ident}", response_class=HTMLResponse)
def show(
    ident: str, request: Request, viewer: CurrentUser, session: DbSession, settings: SettingsDep, page: PageDep
) -> Response:
    """One item's whole record: facts with their sources and every candidate, issues, copies,
    arrivals, discs and custody trail; the forms to set facts and the class for custodians."""
    queue = SearchForm.of(request.query_params).query()
    return _item_page(page, session, request, ident=ident, viewer=viewer, settings=settings, queue=queue)


def _back(item_id: str, form: CsrfForm, notice: str) -> RedirectResponse:
    """Back to the item's page (in the search it was opened from) with ``notice``."""
    queue = form.get("queue")
    query = SearchForm.parse(queue if isinstance(queue, str) else "").query()
    return RedirectResponse(f"/items/{item_id}?{query}{'&' if query else ''}notice={notice}", status_code=303)


@router.post("/items/{ident}/facts")
def set_facts(ident: str, request: Request, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    """Set the facts filled in (the others stay), then back to the item's page."""
    facts = {name: value for name in REQUIRED_FACTS if isinstance(value := form.get(name), str) and value.strip()}
    session.commit()  # what signing in wrote, before the facts are set in a transaction of their own
    done = assign_facts(probe_ctx(request), ident=ident, facts=facts, viewer=viewer)
    return _back(done.item, form, "facts")


@router.post("/items/{ident}/classification")
def classify(ident: str, viewer: CurrentUser, session: DbSession, form: CsrfForm) -> Response:
    """Set the item's class, then back to its page."""
    chosen = form.get("classification")
    done = set_classification(
        session, viewer=viewer, item_id=ident, classification=chosen if isinstance(chosen, str) else "", tool=TOOL
    )
    return _back(done.target.removeprefix("item:"), form, "classified")


@router.post("/items/{ident}/purpose", response_class=HTMLResponse)
def state_purpose(
    ident: str,
    request: Request,
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    page: PageDep,
    form: CsrfForm,
) -> Response:
    """State the purpose of looking at a ``privacy`` item (kept for this session), then its page."""
    given = form.get("purpose")
    purpose = given.strip()[:2000] if isinstance(given, str) else ""
    queue = form.get("queue")
    return _item_page(
        page,
        session,
        request,
        ident=ident,
        viewer=viewer,
        settings=settings,
        purpose=purpose,
        queue=queue if isinstance(queue, str) else "",
    )
