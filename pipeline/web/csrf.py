"""Cross-site request forgery: every form carries a hidden token, and a POST whose token is missing
or wrong is refused with 403 before anything else happens.

- A signed-in browser's token is its web session's own (made at sign-in, kept in the catalog,
  compared by :func:`pipeline.accounts.sessions.check_csrf`), so a token from another session,
  or one from before signing out, is refused.
- Before signing in (the sign-in form) there is no session yet: the token is a random value held
  in a ``SameSite=Strict`` cookie of its own, and the form must carry the same value.
- A request signed with a bearer token carries no ambient credentials and needs no form token.

Routes take :data:`pipeline.web.deps.CsrfForm` instead of reading the form themselves.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from pipeline.accounts.sessions import check_csrf
from pipeline.catalog.people import WebSession

FIELD = "csrf_token"  # the hidden field of every form
HEADER = "X-CSRF-Token"  # or this header, for a script using the browser's session
LOGIN_COOKIE = "evidence_login"  # the token of a browser that is not signed in
_LENGTH = 43  # secrets.token_urlsafe(32)


def _well_formed(token: str | None) -> bool:
    return bool(token) and len(token or "") == _LENGTH and (token or "").isascii()


def form_token(request: Request, web_session: WebSession | None) -> str:
    """The token the forms of this response carry: the session's, or (not signed in) the login
    cookie's, made now when the browser has none (:func:`keep_login_token` sets the cookie)."""
    if web_session is not None:
        return web_session.csrf_token
    token = getattr(request.state, "login_token", None) or request.cookies.get(LOGIN_COOKIE)
    if not _well_formed(token):
        token = secrets.token_urlsafe(32)
        request.state.new_login_token = token
    request.state.login_token = token
    return str(token)


def keep_login_token(request: Request, response: Response, *, secure: bool) -> None:
    """Set the login cookie on ``response`` when :func:`form_token` made a new token."""
    token = getattr(request.state, "new_login_token", None)
    if token:
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


def forget_login_token(response: Response, *, secure: bool) -> None:
    response.delete_cookie(LOGIN_COOKIE, httponly=True, samesite="strict", secure=secure, path="/")


def token_is_valid(request: Request, web_session: WebSession | None, given: object) -> bool:
    """Whether ``given`` (the form's field or the header) is the token bound to this browser."""
    if not isinstance(given, str) or not given:
        return False
    if web_session is not None:
        return check_csrf(web_session, given)
    expected = request.cookies.get(LOGIN_COOKIE)
    if not _well_formed(expected):
        return False
    return hmac.compare_digest(str(expected).encode(), given.encode("utf-8", "surrogatepass"))
