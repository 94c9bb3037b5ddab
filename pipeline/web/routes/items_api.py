"""The items as JSON: ``GET /api/v1/items`` (search, a page at a time by an opaque cursor),
``GET /api/v1/items/{id}`` (the whole record, as ``evidence item --json`` shows it; a retrieval,
recorded) and ``PATCH /api/v1/items/{id}`` (set facts and the class). What the acting user may
see or change is the catalog's to decide; errors come back as the project's statuses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from pipeline.catalog.cases import SETTABLE, set_classification
from pipeline.catalog.queries import MAX_PAGE, Cursor, item_detail, page_items
from pipeline.errors import InvalidValueError
from pipeline.probe.assign import assign_facts
from pipeline.stage import TOOL
from pipeline.web.deps import CurrentUser, DbSession, SettingsDep
from pipeline.web.search import SearchForm, probe_ctx

router = APIRouter(prefix="/api/v1", tags=["items"])

Text = Annotated[str, Query(max_length=4000)]


@router.get("/items")
def list_items(
    viewer: CurrentUser,
    session: DbSession,
    settings: SettingsDep,
    case: Text = "",
    target: Text = "",
    officer: Text = "",
    dock: Text = "",
    late: Text = "",
    missing: Text = "",
    issue: Annotated[str, Query(max_length=4000, description="an issue code, or several separated by commas")] = "",
    date_from: Annotated[str, Query(alias="from", max_length=100, description="capture date or time, from")] = "",
    date_to: Annotated[str, Query(alias="to", max_length=100, description="capture date or time, to (inclusive)")] = "",
    kind: Text = "",
    classification: Annotated[str, Query(alias="class", max_length=100)] = "",
    q: Annotated[str, Query(max_length=4000, description="text in the name, facts or the case's target")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=400, description="the `next` of the page before")] = None,
) -> dict[str, Any]:
    """The items the acting user may know exist that the filters select, oldest first:
    ``{"items": […], "count": all selected, "next": cursor of the next page or null}``."""
    search = SearchForm(
        case=case,
        target=target,
        officer=officer,
        dock=dock,
        late=late,
        missing=missing,
        issue=issue,
        date_from=date_from,
        date_to=date_to,
        kind=kind,
        classification=classification,
        q=q,
    )
    filters = search.filters(settings.zone)
    place = Cursor.decode(cursor) if cursor else None
    return page_items(session, viewer=viewer, filters=filters, cursor=place, limit=limit).as_json()


def _purpose(query: str | None, header: str | None) -> str | None:
    return (query or header or "").strip() or None


@router.get("/items/{ident}")
def show_item(
    ident: str,
    viewer: CurrentUser,
    session: DbSession,
    request: Request,
    purpose: Annotated[str | None, Query(max_length=2000)] = None,
    x_purpose: Annotated[str | None, Header(max_length=2000)] = None,
) -> dict[str, Any]:
    """The item's whole record (a retrieval: recorded with the client and the purpose, from the
    ``purpose`` parameter or the ``X-Purpose`` header)."""
    detail = item_detail(
        session,
        ident=ident,
        viewer=viewer,
        via="web",
        store=probe_ctx(request).store,
        tool=TOOL,
        purpose=_purpose(purpose, x_purpose),
    )
    return detail.as_json()


class FactsIn(BaseModel):
    """The facts to set by hand; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    case_number: str | None = Field(default=None, max_length=4000)
    proof_object: str | None = Field(default=None, max_length=4000)
    captured_place: str | None = Field(default=None, max_length=4000)
    collector: str | None = Field(default=None, max_length=4000)
    captured_at: str | None = Field(default=None, max_length=100)


class ItemChange(BaseModel):
    """``{"facts": {…}, "classification": "…"}``, either part optional."""

    model_config = ConfigDict(extra="forbid")

    facts: FactsIn | None = None
    classification: str | None = Field(default=None, max_length=100)


@router.patch("/items/{ident}")
def change_item(
    ident: str,
    change: ItemChange,
    viewer: CurrentUser,
    session: DbSession,
    request: Request,
    purpose: Annotated[str | None, Query(max_length=2000)] = None,
    x_purpose: Annotated[str | None, Header(max_length=2000)] = None,
) -> dict[str, Any]:
    """Set facts (each change recorded as ``assigned`` with the old and new value, the item
    assessed again) and the class (``classified``); answers the item's record as it is now."""
    if change.classification is not None and change.classification not in SETTABLE:
        raise InvalidValueError(f"{change.classification[:40]!r} is not a class ({', '.join(SETTABLE)})")
    ctx = probe_ctx(request)
    facts = {
        name: value for name, value in (change.facts.model_dump() if change.facts else {}).items() if value is not None
    }
    if not facts and change.classification is None:
        raise InvalidValueError("nothing to change: give facts or a classification")
    if facts:
        session.commit()  # what signing in wrote, before the facts are set in a transaction of their own
        assign_facts(ctx, ident=ident, facts=facts, viewer=viewer)
    if change.classification is not None:
        set_classification(session, viewer=viewer, item_id=ident, classification=change.classification, tool=TOOL)
    session.commit()  # the changes stand even when the record may not be shown without a purpose
    detail = item_detail(
        session,
        ident=ident,
        viewer=viewer,
        via="web",
        store=ctx.store,
        tool=TOOL,
        purpose=_purpose(purpose, x_purpose),
    )
    return detail.as_json()
