"""``GET /``: the first page after signing in."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from pipeline.web.deps import CurrentUser, PageDep

router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse)
def home(viewer: CurrentUser, page: PageDep) -> HTMLResponse:
    """Who is signed in, with which roles; what comes next."""
    return page.render("home.html", {"roles": sorted(viewer.roles)})
