"""Signing in and out: ``GET/POST /login``, ``POST /logout``. The session cookie is ``HttpOnly``,
``SameSite=Strict`` and ``Secure`` (unless the setting ``web_insecure_cookies`` allows plain http)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from pipeline.accounts.sessions import sign_in, sign_out
from pipeline.errors import AccountLocked, LoginRefused, LoginThrottled
from pipeline.stage import TOOL
from pipeline.web.csrf import forget_login_token
from pipeline.web.deps import (
    SESSION_COOKIE,
    CsrfForm,
    DbSession,
    PageDep,
    PrincipalDep,
    SettingsDep,
    client_address,
)
from pipeline.web.pages import local_path

router = APIRouter(tags=["sessions"])


def _text(form_value: object, limit: int) -> str:
    return form_value[:limit] if isinstance(form_value, str) else ""


@router.get("/login", response_model=None)
def login_form(page: PageDep, found: PrincipalDep, next: str = "/") -> Response:
    """The sign-in form (a browser already signed in goes on to ``next``)."""
    target = local_path(next)
    if found is not None and found.web_session is not None:
        return RedirectResponse("/account/password" if found.must_change_password else target, status_code=303)
    return page.render("login.html", {"next": target, "name": "", "problem": None})


@router.post("/login", response_model=None)
def login(request: Request, form: CsrfForm, session: DbSession, settings: SettingsDep, page: PageDep) -> Response:
    """Check the name and password; on success set the session cookie and go on (to the password
    page first when the account must change its password)."""
    name = _text(form.get("name"), 200).strip()
    password = _text(form.get("password"), 4096)
    target = local_path(_text(form.get("next"), 2000))
    t = page.t
    try:
        signed = sign_in(
            session,
            name=name,
            password=password,
            client=client_address(request),
            lifetime=timedelta(hours=settings.session_hours),
            tool=TOOL,
        )
    except LoginThrottled as exc:
        problem, status = t("login.throttled", until=f"{exc.until:%Y-%m-%d %H:%M}"), 429
    except AccountLocked as exc:
        problem, status = t("login.locked", until=f"{exc.until:%Y-%m-%d %H:%M}"), 429
    except LoginRefused:
        problem, status = t("login.refused"), 401
    else:
        secure = not settings.web_insecure_cookies
        response = RedirectResponse("/account/password" if signed.must_change_password else target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            signed.secret,
            max_age=int(settings.session_hours * 3600),
            path="/",
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        forget_login_token(response, secure=secure)
        return response
    return page.render("login.html", {"next": target, "name": name, "problem": problem}, status=status)


@router.post("/logout", response_model=None)
def logout(request: Request, form: CsrfForm, session: DbSession, settings: SettingsDep) -> Response:
    """End this browser's session and go to the sign-in page."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        sign_out(session, secret=secret, tool=TOOL)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=not settings.web_insecure_cookies, httponly=True, samesite="strict"
    )
    return response
