"""Server-rendered pages: Jinja2 templates from ``templates/`` with autoescaping always on, every
page given the translator ``t``, its language, the acting user (when signed in) and the form
token its forms carry, and ``when`` to show a time in the site's zone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from pipeline import __version__
from pipeline.catalog.people import WebSession
from pipeline.catalog.viewer import Viewer
from pipeline.settings import Settings
from pipeline.web.csrf import form_token, keep_login_token
from pipeline.web.i18n import LANG_COOKIE, Translations, Translator

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def make_environment() -> Environment:
    """The templates' environment: autoescaping on for every template, whatever its name, and an
    undefined name is an error rather than an empty string."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def translations_of(request: Request) -> Translations:
    found: Translations = request.app.state.translations
    return found


def language_of(request: Request) -> str:
    return translations_of(request).choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` when it is a path on this site (``/…``, not ``//host`` nor ``/\\host``), else
    ``default``: a ``next`` parameter never sends a browser elsewhere."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if not target.isprintable() or any(c in target for c in "\\<>\"'`"):
        return default
    return target


def clock(settings: Settings) -> Callable[[datetime | str | None], str]:
    """``when(moment)``: a stored UTC time (or its ISO text) as the site's local time, to the second,
    as every page shows times; the filters read typed times in the same zone."""

    def when(moment: datetime | str | None) -> str:
        if moment is None or moment == "":
            return ""
        if isinstance(moment, str):
            text = moment
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return text
        if moment.tzinfo is None:  # the catalog keeps UTC; SQLite hands it back without the zone
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S")

    return when


@dataclass(frozen=True)
class Page:
    """What every page is rendered with; made per request by :func:`pipeline.web.deps.page`."""

    request: Request
    lang: str
    t: Translator
    viewer: Viewer | None
    web_session: WebSession | None

    def render(self, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200) -> HTMLResponse:
        settings: Settings = self.request.app.state.settings
        env: Environment = self.request.app.state.templates
        here = self.request.url.path
        values = {
            "t": self.t,
            "lang": self.lang,
            "languages": translations_of(self.request).languages,
            "viewer": self.viewer,
            "csrf_field": "csrf_token",
            # Called by the forms that need it: a page without a form sets no login cookie.
            "csrf_token": lambda: form_token(self.request, self.web_session),
            "here": here,
            "version": __version__,
            "when": clock(settings),
            "zone": settings.timezone,
            **(context or {}),
        }
        response = HTMLResponse(env.get_template(template).render(values), status_code=status)
        keep_login_token(self.request, response, secure=not settings.web_insecure_cookies)
        return response


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    """The error page: the status's title in the reader's language and what went wrong, without a
    traceback. The acting user is not looked up again (the failure may be the catalog's)."""
    lang = language_of(request)
    t = translations_of(request).translator(lang)
    if status >= 500 and status != 503:
        message = t("error.internal")
    page = Page(request=request, lang=lang, t=t, viewer=None, web_session=None)
    title = t(f"error.title.{status}")
    if message == _phrase(status):
        message = ""  # Starlette's own words for the status: the title says it in the reader's language
    context = {"status": status, "title": title, "message": message, "path": request.url.path}
    return page.render("error.html", context, status=status)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
