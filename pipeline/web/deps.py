"""What routes are given, as ``Annotated`` dependencies: the settings, a catalog session per
request, who is acting (from the session cookie or a bearer token), the page renderer, and a form
whose CSRF token has been checked.

- :data:`CurrentUser`: the acting :class:`~pipeline.catalog.viewer.Viewer`. Not signed in: pages
  go to ``/login``, the API answers 401. An account that must change its password is sent to
  ``/account/password`` (the API answers 403) before anything else.
- :data:`SignedIn`: the same, but allowed while the password must still be changed (the password
  page itself).
- :data:`CsrfForm`: the posted form, refused with 403 unless it carries this browser's token.
- :func:`stage_queue`: the application's one dispatcher of work to the workers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlmodel import Session
from starlette.datastructures import FormData

from pipeline.accounts.sessions import viewer_for_session
from pipeline.accounts.tokens import viewer_for_token
from pipeline.accounts.views import find_user
from pipeline.catalog.db import session_scope
from pipeline.catalog.people import WebSession
from pipeline.catalog.viewer import Viewer
from pipeline.errors import NotFoundError

if TYPE_CHECKING:
    from workers.dispatch import Dispatcher
from pipeline.settings import Settings
from pipeline.web.csrf import FIELD, HEADER, token_is_valid
from pipeline.web.errors import CsrfRefused, PasswordChangeRequired, SignInRequired
from pipeline.web.i18n import Translator
from pipeline.web.pages import Page, language_of, translations_of

SESSION_COOKIE = "evidence_session"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def db_session(request: Request) -> Iterator[Session]:
    """One catalog transaction per request: committed when the route returns, rolled back when it
    raises."""
    with session_scope(request.app.state.engine) as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


@dataclass(frozen=True)
class Principal:
    """Who sent a request: the viewer, its web session (None when signed with a bearer token) and
    whether the account must change its password first."""

    viewer: Viewer
    web_session: WebSession | None = None
    must_change_password: bool = False


def _bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; "" when the header is there but is not
    a bearer token (refused, never read as no credentials); None without the header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def principal(request: Request, session: DbSession) -> Principal | None:
    """The request's principal, or None. A bearer token, when sent, is the only credential looked
    at; otherwise the session cookie."""
    client = client_address(request)
    token = _bearer(request)
    if token is not None:
        viewer = viewer_for_token(session, token=token, client=client) if token else None
        return Principal(viewer) if viewer is not None else None
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    idle = timedelta(minutes=get_settings(request).session_idle_minutes)
    found = viewer_for_session(session, secret=secret, client=client, idle=idle)
    if found is None:
        return None
    viewer, web_session = found
    try:
        must_change = find_user(session, viewer.name).must_change_password
    except NotFoundError:
        return None
    return Principal(viewer, web_session, must_change)


PrincipalDep = Annotated[Principal | None, Depends(principal)]


def signed_in(found: PrincipalDep) -> Principal:
    """The principal; :class:`SignInRequired` without one."""
    if found is None:
        raise SignInRequired()
    return found


SignedIn = Annotated[Principal, Depends(signed_in)]


def current_viewer(found: SignedIn) -> Viewer:
    """The acting viewer, once any password change it owes is done."""
    if found.must_change_password:
        raise PasswordChangeRequired()
    return found.viewer


CurrentUser = Annotated[Viewer, Depends(current_viewer)]


def translator(request: Request) -> Translator:
    return translations_of(request).translator(language_of(request))


Lang = Annotated[Translator, Depends(translator)]


def page(request: Request, found: PrincipalDep, t: Lang) -> Page:
    """The renderer of this request's page (the viewer shown only once it may act)."""
    acting = found.viewer if found is not None and not found.must_change_password else None
    return Page(request=request, lang=t.lang, t=t, viewer=acting, web_session=found.web_session if found else None)


PageDep = Annotated[Page, Depends(page)]


async def verified_form(request: Request, found: PrincipalDep) -> FormData:
    """The posted form, when it carries this browser's CSRF token (field ``csrf_token`` or header
    ``X-CSRF-Token``); :class:`CsrfRefused` (403) otherwise. A bearer-token request needs none."""
    form = await request.form()
    if found is not None and found.web_session is None:
        return form
    given = form.get(FIELD) or request.headers.get(HEADER)
    if not token_is_valid(request, found.web_session if found else None, given):
        raise CsrfRefused()
    return form


CsrfForm = Annotated[FormData, Depends(verified_form)]


_queue_lock = threading.Lock()


def stage_queue(state: Any) -> Dispatcher:
    """The application's one dispatcher (``app.state``'s): its Celery app is made at the first use,
    not at every request that queues work."""
    with _queue_lock:
        found: Dispatcher | None = getattr(state, "stage_queue", None)
        if found is None:
            from workers.app import create_app
            from workers.dispatch import Dispatcher

            found = Dispatcher(create_app(state.settings))
            state.stage_queue = found
    return found
