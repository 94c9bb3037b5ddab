"""The admin's pages for accounts and API tokens (ACCESS.md: users, tokens, settings are the
admin's; an admin sees no evidence unless also given a content role).

Pages: ``GET/POST /admin/users`` (the accounts, and adding one), ``POST /admin/users/{name}/disable``,
``/enable``, ``/password`` (a new one-time password) and ``/roles``; ``GET/POST /admin/tokens`` and
``POST /admin/tokens/{name}/revoke``. The same as JSON under ``/api/v1/users`` and ``/api/v1/tokens``.

A one-time password or a token's secret is in the answer to the request that made it and nowhere
else: not in the catalog, the custody log or any later page. The changes are
:mod:`pipeline.accounts`'s, which record their own custody events; those functions take only the
actor's name (the command line acts with the server's authority), so this router asks
:func:`~pipeline.accounts.views.require_admin` first, in the one dependency :data:`Admin`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.datastructures import FormData

from pipeline.accounts.passwords import random_password
from pipeline.accounts.tokens import create_token, list_tokens, revoke_token
from pipeline.accounts.users import add_user, disable_user, list_users, set_password, set_roles
from pipeline.accounts.views import find_user, require_admin
from pipeline.catalog.people import CLEARABLE, Role
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError, PipelineError, describe
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep
from pipeline.web.errors import status_for
from pipeline.web.pages import Page

router = APIRouter(tags=["admin"])

FIELD_LIMIT = 1000  # a form field is cut here; the account functions say what is wrong with the rest
MAX_DAYS = 3650
ROLES = tuple(r.value for r in Role)
CLEARANCES = tuple(c.value for c in CLEARABLE)
# What the pages show on their forms instead of a 500 (the rest goes to the error handlers).
SHOWN = (InvalidValueError, ConflictError, NotFoundError)


def admin_viewer(viewer: CurrentUser) -> Viewer:
    """The acting viewer, when an admin; 403 for anyone else signed in."""
    require_admin(viewer)
    return viewer


Admin = Annotated[Viewer, Depends(admin_viewer)]


# ---------------------------------------------------------------------------------------- inputs
def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value[:FIELD_LIMIT].strip() if isinstance(value, str) else ""


def texts(form: FormData, name: str) -> list[str]:
    """Every value of a repeated field (checkboxes), cut and without blanks."""
    return [v[:FIELD_LIMIT].strip() for v in form.getlist(name)[:20] if isinstance(v, str) and v.strip()]


def checked(form: FormData, name: str) -> bool:
    return text(form, name) in ("on", "true", "1", "yes")


def expiry_days(value: str | int | None) -> timedelta | None:
    """A token's lifetime in whole days (1 to 3650), None when not given (it never expires)."""
    if value is None or value == "":
        return None
    try:
        days = int(value)
    except ValueError:
        raise InvalidValueError(f"the expiry must be a whole number of days, 1 to {MAX_DAYS}") from None
    if not 1 <= days <= MAX_DAYS:
        raise InvalidValueError(f"the expiry must be a whole number of days, 1 to {MAX_DAYS}")
    return timedelta(days=days)


# --------------------------------------------------------------------------------------- actions
def new_user(
    session: Session,
    admin: Viewer,
    *,
    name: str,
    display_name: str | None,
    roles: list[str],
    clearances: list[str],
    approver: bool,
    dock: str | None,
) -> tuple[dict[str, Any], str]:
    """Add the account with a one-time password it must change at its first sign-in; the account
    and that password (for this answer only)."""
    password = random_password()
    view = add_user(
        session,
        name=name,
        roles=roles,
        clearances=clearances,
        password=password,
        approver=approver,
        dock=dock or None,
        display_name=display_name or None,
        must_change_password=True,
        actor=admin.name,
        tool=TOOL,
    )
    return view.as_json(), password


def reset_password(session: Session, admin: Viewer, name: str) -> tuple[dict[str, Any], str]:
    """A new one-time password for ``name``; its sessions end."""
    password = random_password()
    view = set_password(session, name=name, password=password, must_change=True, actor=admin.name, tool=TOOL)
    return view.as_json(), password


def new_token(
    session: Session,
    admin: Viewer,
    *,
    name: str,
    role: str,
    dock: str | None,
    clearances: list[str],
    days: str | int | None,
) -> dict[str, Any]:
    lifetime = expiry_days(days)
    made = create_token(
        session,
        name=name,
        role=role,
        dock=dock or None,
        clearances=clearances,
        expires_at=utcnow() + lifetime if lifetime else None,
        actor=admin.name,
        tool=TOOL,
    )
    return made.as_json()


# ----------------------------------------------------------------------------------------- pages
BLANK_USER = {"name": "", "display_name": "", "roles": [], "clearances": [], "approver": False, "dock": ""}
BLANK_TOKEN = {"name": "", "role": "", "dock": "", "clearances": [], "days": ""}


def users_page(
    session: Session,
    page: Page,
    *,
    problem: str | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    context = {
        "users": list_users(session),
        "roles": ROLES,
        "clearances": CLEARANCES,
        "values": values or BLANK_USER,
        "problem": problem,
    }
    return page.render("admin_users.html", context, status=status)


def tokens_page(
    session: Session,
    page: Page,
    *,
    problem: str | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    context = {
        "tokens": list_tokens(session),
        "roles": ROLES,
        "clearances": CLEARANCES,
        "values": values or BLANK_TOKEN,
        "problem": problem,
    }
    return page.render("admin_tokens.html", context, status=status)


def refused(session: Session, page: Page, exc: PipelineError) -> tuple[str, int]:
    """The message and status of a refused change, after undoing whatever of it was begun."""
    session.rollback()
    return page.t("admin.refused", reason=describe(exc)), status_for(exc)


def secret_page(page: Page, *, what: str, name: str, secret: str, back: str) -> HTMLResponse:
    """The one answer that shows a one-time password or a token's secret."""
    return page.render("admin_secret.html", {"what": what, "name": name, "secret": secret, "back": back})


def unconfirmed(form: FormData) -> bool:
    """True until the form comes back from the confirmation page (field ``confirm`` = ``yes``)."""
    return text(form, "confirm") != "yes"


def confirm_page(page: Page, *, what: str, name: str, action: str, back: str) -> HTMLResponse:
    """Ask before a change that locks someone out or ends what they are doing: what it does, and
    the same form again with ``confirm`` set, or back without a change."""
    return page.render("admin_confirm.html", {"what": what, "name": name, "action": action, "back": back})


@router.get("/admin/users", response_class=HTMLResponse)
def users(admin: Admin, session: DbSession, page: PageDep) -> HTMLResponse:
    """Every account with its roles, clearances, approver right, dock and state; the forms to add,
    disable, enable, reset and change roles."""
    return users_page(session, page)


@router.post("/admin/users", response_model=None)
def add(admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Add an account; the answer shows its one-time password, once."""
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "display_name": text(form, "display_name"),
        "roles": texts(form, "role"),
        "clearances": texts(form, "clearance"),
        "approver": checked(form, "approver"),
        "dock": text(form, "dock"),
    }
    try:
        made, password = new_user(session, admin, **values)
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return users_page(session, page, problem=problem, status=status, values=values)
    return secret_page(page, what="user-added", name=made["name"], secret=password, back="/admin/users")


def _enabled(admin: Viewer, session: Session, page: Page, name: str, *, enabled: bool) -> Response:
    try:
        disable_user(session, name=name, enabled=enabled, actor=admin.name, tool=TOOL)
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return users_page(session, page, problem=problem, status=status)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{name}/disable", response_model=None)
def disable(name: str, admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Disable the account, once confirmed: it cannot sign in, and its sessions end at once."""
    if unconfirmed(form):
        found = find_user(session, name)
        action = f"/admin/users/{quote(found.name, safe='')}/disable"
        return confirm_page(page, what="disable", name=found.name, action=action, back="/admin/users")
    return _enabled(admin, session, page, name, enabled=False)


@router.post("/admin/users/{name}/enable", response_model=None)
def enable(name: str, admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Enable the account again (and unlock it)."""
    return _enabled(admin, session, page, name, enabled=True)


@router.post("/admin/users/{name}/password", response_model=None)
def password(name: str, admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """A new one-time password once confirmed, shown once; the account's sessions end."""
    if unconfirmed(form):
        found = find_user(session, name)
        action = f"/admin/users/{quote(found.name, safe='')}/password"
        return confirm_page(page, what="reset", name=found.name, action=action, back="/admin/users")
    try:
        made, secret = reset_password(session, admin, name)
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return users_page(session, page, problem=problem, status=status)
    return secret_page(page, what="password-set", name=made["name"], secret=secret, back="/admin/users")


@router.post("/admin/users/{name}/roles", response_model=None)
def roles(name: str, admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Replace the account's roles, clearances and approver right (a dock when given)."""
    try:
        set_roles(
            session,
            name=name,
            roles=texts(form, "role"),
            clearances=texts(form, "clearance"),
            approver=checked(form, "approver"),
            dock=text(form, "dock") or None,
            actor=admin.name,
            tool=TOOL,
        )
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return users_page(session, page, problem=problem, status=status)
    return RedirectResponse("/admin/users", status_code=303)


@router.get("/admin/tokens", response_class=HTMLResponse)
def tokens(admin: Admin, session: DbSession, page: PageDep) -> HTMLResponse:
    """Every token by name and prefix (never its secret), and the forms to make and revoke one."""
    return tokens_page(session, page)


@router.post("/admin/tokens", response_model=None)
def add_token(admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Make a token; the answer shows its secret, once."""
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "role": text(form, "role"),
        "dock": text(form, "dock"),
        "clearances": texts(form, "clearance"),
        "days": text(form, "days"),
    }
    try:
        made = new_token(session, admin, **values)
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return tokens_page(session, page, problem=problem, status=status, values=values)
    return secret_page(page, what="token-created", name=made["name"], secret=made["token"], back="/admin/tokens")


@router.post("/admin/tokens/{name}/revoke", response_model=None)
def revoke(name: str, admin: Admin, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Revoke the token once confirmed: it is refused from the next request on."""
    if unconfirmed(form):
        if not any(token.name == name for token in list_tokens(session)):
            raise NotFoundError(f"no token named {name}")
        action = f"/admin/tokens/{quote(name, safe='')}/revoke"
        return confirm_page(page, what="revoke", name=name, action=action, back="/admin/tokens")
    try:
        revoke_token(session, name=name, actor=admin.name, tool=TOOL)
    except SHOWN as exc:
        problem, status = refused(session, page, exc)
        return tokens_page(session, page, problem=problem, status=status)
    return RedirectResponse("/admin/tokens", status_code=303)


# ------------------------------------------------------------------------------------------- API
Name = Annotated[str, Field(max_length=FIELD_LIMIT)]
Names = Annotated[list[Name], Field(max_length=20)]


class NewUser(BaseModel):
    name: Name
    display_name: Name | None = None
    roles: Names
    clearances: Names = []
    approver: bool = False
    dock: Name | None = None


class RolesChange(BaseModel):
    roles: Names
    clearances: Names | None = Field(default=None, description="unchanged when left out")
    approver: bool | None = Field(default=None, description="unchanged when left out")
    dock: Name | None = None


class NewToken(BaseModel):
    name: Name
    role: Name
    dock: Name | None = None
    clearances: Names = []
    expires_days: int | None = Field(default=None, ge=1, le=MAX_DAYS, description="never expires when left out")


@router.get("/api/v1/users")
def api_users(admin: Admin, session: DbSession) -> dict[str, Any]:
    """``{"users": [...]}``: every account, by name (never a password or its hash)."""
    return {"users": [u.as_json() for u in list_users(session)]}


@router.post("/api/v1/users", status_code=201, response_model=None)
def api_add(body: NewUser, admin: Admin, form: CsrfForm, session: DbSession) -> JSONResponse:
    """Add an account; the account with ``password``, its one-time password, in this answer only (201)."""
    made, secret = new_user(session, admin, **body.model_dump())
    return JSONResponse(made | {"password": secret}, status_code=201)


@router.post("/api/v1/users/{name}/disable")
def api_disable(name: str, admin: Admin, form: CsrfForm, session: DbSession) -> dict[str, Any]:
    """Disable the account and end its sessions; the account."""
    return disable_user(session, name=name, actor=admin.name, tool=TOOL).as_json()


@router.post("/api/v1/users/{name}/enable")
def api_enable(name: str, admin: Admin, form: CsrfForm, session: DbSession) -> dict[str, Any]:
    """Enable the account again; the account."""
    return disable_user(session, name=name, enabled=True, actor=admin.name, tool=TOOL).as_json()


@router.post("/api/v1/users/{name}/password")
def api_password(name: str, admin: Admin, form: CsrfForm, session: DbSession) -> dict[str, Any]:
    """A new one-time password (``password``, in this answer only); the account's sessions end."""
    made, secret = reset_password(session, admin, name)
    return made | {"password": secret}


@router.post("/api/v1/users/{name}/roles")
def api_roles(name: str, body: RolesChange, admin: Admin, form: CsrfForm, session: DbSession) -> dict[str, Any]:
    """Replace the account's roles (and clearances, approver right, dock when given); the account."""
    changed = set_roles(
        session,
        name=name,
        roles=body.roles,
        clearances=body.clearances,
        approver=body.approver,
        dock=body.dock or None,
        actor=admin.name,
        tool=TOOL,
    )
    return changed.as_json()


@router.get("/api/v1/tokens")
def api_tokens(admin: Admin, session: DbSession) -> dict[str, Any]:
    """``{"tokens": [...]}``: every token by name and prefix, revoked and expired ones included."""
    return {"tokens": [t.as_json() for t in list_tokens(session)]}


@router.post("/api/v1/tokens", status_code=201, response_model=None)
def api_add_token(body: NewToken, admin: Admin, form: CsrfForm, session: DbSession) -> JSONResponse:
    """Make a token; with ``token``, its secret, in this answer only (201)."""
    made = new_token(
        session,
        admin,
        name=body.name,
        role=body.role,
        dock=body.dock,
        clearances=body.clearances,
        days=body.expires_days,
    )
    return JSONResponse(made, status_code=201)


@router.post("/api/v1/tokens/{name}/revoke")
def api_revoke(name: str, admin: Admin, form: CsrfForm, session: DbSession) -> dict[str, Any]:
    """Revoke the token; the token as it is now."""
    return revoke_token(session, name=name, actor=admin.name, tool=TOOL).as_json()
