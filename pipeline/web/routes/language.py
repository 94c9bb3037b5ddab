"""``GET /language/{code}?next=…``: choose the pages' language (a ``lang`` cookie) and go back.
Open without signing in, so the sign-in page can be read in either language."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.requests import Request

from pipeline.errors import NotFoundError
from pipeline.web.deps import SettingsDep
from pipeline.web.i18n import LANG_COOKIE
from pipeline.web.pages import local_path, translations_of

router = APIRouter(tags=["pages"])
YEAR = 365 * 24 * 3600


@router.get("/language/{code}")
def choose_language(code: str, request: Request, settings: SettingsDep, next: str = "/") -> RedirectResponse:
    if code not in translations_of(request).languages:
        raise NotFoundError(f"no pages in language {code[:20]!r}")
    response = RedirectResponse(local_path(next), status_code=303)
    response.set_cookie(
        LANG_COOKIE, code, max_age=YEAR, path="/", secure=not settings.web_insecure_cookies, samesite="lax"
    )
    return response
