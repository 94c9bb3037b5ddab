"""The acting user's own account: ``GET/POST /account/password`` (also where an account that must
change its password is sent first) and ``GET /api/v1/me``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from pipeline.accounts.users import change_own_password
from pipeline.errors import PasswordRejected
from pipeline.stage import TOOL
from pipeline.web.deps import CsrfForm, CurrentUser, DbSession, PageDep, SignedIn

router = APIRouter(tags=["account"])


@router.get("/account/password", response_model=None)
def password_form(found: SignedIn, page: PageDep) -> Response:
    """The form to choose a new password, giving the current one."""
    return page.render(
        "password.html", {"forced": found.must_change_password, "problem": None, "name": found.viewer.name}
    )


@router.post("/account/password", response_model=None)
def change_password(found: SignedIn, form: CsrfForm, session: DbSession, page: PageDep) -> Response:
    """Change the password; the other sessions of the account end, this one stays."""
    values = {key: form.get(key) for key in ("old", "new", "repeat")}
    old, new, repeat = (value[:4096] if isinstance(value, str) else "" for value in values.values())
    if new != repeat:
        problem, status = page.t("password.mismatch"), 422
    else:
        try:
            change_own_password(session, viewer=found.viewer, old=old, new=new, tool=TOOL)
        except PasswordRejected as exc:
            problem, status = page.t("password.rejected", reason=exc.reason), 422
        else:
            return RedirectResponse("/", status_code=303)
    context = {"forced": found.must_change_password, "problem": problem, "name": found.viewer.name}
    return page.render("password.html", context, status=status)


@router.get("/api/v1/me")
def me(viewer: CurrentUser) -> dict[str, Any]:
    """Who the credentials sent act as: name, roles, clearances, dock."""
    return {
        "name": viewer.name,
        "roles": sorted(viewer.roles),
        "clearances": sorted(viewer.clearances),
        "approver": viewer.approver,
        "dock": viewer.dock,
    }
