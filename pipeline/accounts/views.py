"""An account as the rest of the product sees it: a :class:`UserView` for lists and pages (never
the password hash), and the :class:`Viewer` that acts for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from pipeline.accounts.rules import shown
from pipeline.catalog.people import CLEARABLE, Classification, Role, UserAccount
from pipeline.catalog.types import iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.errors import ForbiddenError, NotFoundError

_ROLES = {r.value for r in Role}
_CLEARABLE = {c.value for c in CLEARABLE}


@dataclass(frozen=True)
class UserView:
    """An account as people may see it: never its password hash."""

    name: str
    display_name: str | None
    roles: tuple[str, ...]
    clearances: tuple[str, ...]
    approver: bool
    dock: str | None
    disabled: bool
    locked: bool
    must_change_password: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, user: UserAccount) -> UserView:
        return cls(
            name=user.name,
            display_name=user.display_name,
            roles=tuple(user.roles),
            clearances=tuple(user.clearances),
            approver=user.approver,
            dock=user.dock_id,
            disabled=user.disabled,
            locked=bool(user.locked_until and user.locked_until > utcnow()),
            must_change_password=user.must_change_password,
            has_password=user.password_hash is not None,
            created_at=user.created_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "roles": list(self.roles),
            "clearances": list(self.clearances),
            "approver": self.approver,
            "dock": self.dock,
            "disabled": self.disabled,
            "locked": self.locked,
            "must_change_password": self.must_change_password,
            "has_password": self.has_password,
            "created_at": iso(self.created_at),
        }


def viewer_for_user(user: UserAccount, *, session_id: str | None = None, client: str | None = None) -> Viewer:
    """The :class:`Viewer` acting for ``user`` (roles or clearances the catalog no longer knows are
    dropped, never guessed)."""
    return Viewer(
        name=user.name,
        roles=frozenset(Role(r) for r in user.roles if r in _ROLES),
        clearances=frozenset(Classification(c) for c in user.clearances if c in _CLEARABLE),
        user_id=user.id,
        approver=user.approver,
        dock=user.dock_id,
        session_id=session_id,
        client=client,
    )


def find_user(session: Session, name: str) -> UserAccount:
    """The account called ``name``, or :class:`NotFoundError`."""
    user = session.exec(select(UserAccount).where(UserAccount.name == name)).first()
    if user is None:
        raise NotFoundError(f"no account named {shown(name)}")
    return user


def require_admin(viewer: Viewer, *, doing: str = "manage accounts and tokens") -> None:
    """:class:`ForbiddenError` unless ``viewer`` holds the admin role. The account functions take
    only the actor's name (the command line acts with the server's authority); every other caller
    asks this first."""
    if Role.ADMIN not in viewer.roles:
        raise ForbiddenError(f"{viewer.name} may not {doing}: that needs the admin role")
