"""Accounts: adding people (and docks' machine accounts), their roles and clearances, passwords
set by an admin or changed by their owner, disabling, and the first admin of a new catalog. Each
change is a custody event naming the account, never a password."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from pipeline.accounts.passwords import check_strength, hash_password, random_password, verify_password
from pipeline.accounts.rules import check_clearances, check_name, check_roles, shown
from pipeline.accounts.sessions import revoke_sessions
from pipeline.accounts.views import UserView, find_user, viewer_for_user
from pipeline.catalog.people import Role, UserAccount
from pipeline.catalog.types import utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError, PasswordRejected

__all__ = [
    "FIRST_ADMIN",
    "UserView",
    "add_user",
    "change_own_password",
    "disable_user",
    "ensure_first_admin",
    "find_user",
    "list_users",
    "set_password",
    "set_roles",
    "viewer_for_user",
]

FIRST_ADMIN = "admin"


def _admins(session: Session) -> list[UserAccount]:
    """The enabled accounts holding the admin role (roles are a JSON list: read, then filtered)."""
    users = session.exec(select(UserAccount).where(col(UserAccount.disabled).is_(False))).all()
    return [u for u in users if Role.ADMIN in u.roles]


def _keep_an_admin(session: Session, user: UserAccount) -> None:
    """Refuse to take away the last enabled admin: nobody could manage accounts from the web."""
    if Role.ADMIN in user.roles and not user.disabled and [u.id for u in _admins(session)] == [user.id]:
        raise ConflictError(f"{user.name} is the only enabled admin: make another admin first")


def add_user(
    session: Session,
    *,
    name: str,
    roles: Iterable[str],
    clearances: Iterable[str] = (),
    password: str | None = None,
    approver: bool = False,
    dock: str | None = None,
    display_name: str | None = None,
    must_change_password: bool = False,
    actor: str,
    tool: str,
) -> UserView:
    """Add the account ``name``; records ``user-added``. Without a password the account cannot sign
    in until one is set (:func:`set_password`)."""
    check_name(name)
    checked_roles = check_roles(roles, dock=dock)
    checked_clearances = check_clearances(clearances)
    if display_name is not None and (len(display_name) > 200 or not display_name.isprintable()):
        raise InvalidValueError(f"display name {shown(display_name)} must be printable, at most 200 characters")
    if session.exec(select(UserAccount.id).where(UserAccount.name == name)).first():
        raise ConflictError(f"an account named {name} already exists")
    if password is not None:
        check_strength(password, name=name)
    now = utcnow()
    user = UserAccount(
        name=name,
        display_name=display_name or None,
        password_hash=hash_password(password) if password is not None else None,
        roles=[r.value for r in checked_roles],
        clearances=[c.value for c in checked_clearances],
        approver=approver,
        dock_id=dock,
        must_change_password=must_change_password,
        password_changed_at=now if password is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    with CustodyLog(session, actor) as log:
        details = {
            "roles": user.roles,
            "clearances": user.clearances,
            "approver": approver,
            "dock": dock,
            "password": "set" if password is not None else "none",
            "must_change_password": must_change_password,
        }
        log.record("user-added", f"user:{name}", details, tool=tool)
    return UserView.of(user)


def list_users(session: Session) -> list[UserView]:
    """Every account, by name."""
    return [UserView.of(u) for u in session.exec(select(UserAccount).order_by(col(UserAccount.name))).all()]


def disable_user(session: Session, *, name: str, actor: str, tool: str, enabled: bool = False) -> UserView:
    """Disable the account ``name`` (it cannot sign in, and its web sessions end at once), or enable
    it again with ``enabled=True``; records ``user-disabled`` or ``user-enabled``."""
    user = find_user(session, name)
    revoked = 0
    if not enabled:
        _keep_an_admin(session, user)
        revoked = revoke_sessions(session, user_id=user.id)
    user.disabled = not enabled
    if enabled:
        user.failed_logins, user.locked_until = 0, None
    user.updated_at = utcnow()
    session.add(user)
    with CustodyLog(session, actor) as log:
        action = "user-enabled" if enabled else "user-disabled"
        log.record(action, f"user:{name}", {"sessions_ended": revoked}, tool=tool)
    return UserView.of(user)


def _new_password(session: Session, user: UserAccount, password: str, *, keep_session: str | None) -> int:
    """Set ``user``'s password (already checked); unlock the account and end its other sessions."""
    user.password_hash = hash_password(password)
    user.password_changed_at = user.updated_at = utcnow()
    user.failed_logins, user.locked_until = 0, None
    session.add(user)
    return revoke_sessions(session, user_id=user.id, except_id=keep_session)


def set_password(
    session: Session, *, name: str, password: str, actor: str, tool: str, must_change: bool = False
) -> UserView:
    """An admin sets ``name``'s password (``must_change``: a one-time password the owner replaces
    at the next sign-in); the account is unlocked and signed out everywhere; records
    ``password-set``."""
    user = find_user(session, name)
    check_strength(password, name=name)
    revoked = _new_password(session, user, password, keep_session=None)
    user.must_change_password = must_change
    with CustodyLog(session, actor) as log:
        details = {"must_change_password": must_change, "sessions_ended": revoked}
        log.record("password-set", f"user:{name}", details, tool=tool)
    return UserView.of(user)


def change_own_password(session: Session, *, viewer: Viewer, old: str, new: str, tool: str) -> UserView:
    """The signed-in person changes their own password, giving the current one; their other
    sessions end (the one they act from stays); records ``password-changed``."""
    user = session.get(UserAccount, viewer.user_id) if viewer.user_id else None
    if user is None or user.disabled:
        raise NotFoundError(f"{viewer.name} has no account whose password could be changed")
    if user.password_hash is None or not verify_password(user.password_hash, old):
        raise PasswordRejected("the current password is not right")
    if new == old:
        raise PasswordRejected("the new password must differ from the current one")
    check_strength(new, name=user.name)
    revoked = _new_password(session, user, new, keep_session=viewer.session_id)
    user.must_change_password = False
    with CustodyLog(session, viewer.name) as log:
        details = {"client": viewer.client, "sessions_ended": revoked}
        log.record("password-changed", f"user:{user.name}", details, tool=tool)
    return UserView.of(user)


def set_roles(
    session: Session,
    *,
    name: str,
    roles: Iterable[str],
    clearances: Iterable[str] | None = None,
    approver: bool | None = None,
    dock: str | None = None,
    actor: str,
    tool: str,
) -> UserView:
    """Replace ``name``'s roles (and, when given, clearances and the approver right; a dock account
    keeps its dock unless another is given); records ``roles-changed`` with the old and new."""
    user = find_user(session, name)
    wanted = list(roles)
    keep_dock = dock if dock is not None else (user.dock_id if Role.DOCK in wanted else None)
    new_roles = [r.value for r in check_roles(wanted, dock=keep_dock)]
    new_clearances = [c.value for c in check_clearances(clearances)] if clearances is not None else user.clearances
    new_approver = user.approver if approver is None else approver
    if Role.ADMIN not in new_roles:
        _keep_an_admin(session, user)
    before = {"roles": user.roles, "clearances": user.clearances, "approver": user.approver, "dock": user.dock_id}
    user.roles, user.clearances, user.approver, user.dock_id = new_roles, new_clearances, new_approver, keep_dock
    user.updated_at = utcnow()
    session.add(user)
    after = {"roles": user.roles, "clearances": user.clearances, "approver": user.approver, "dock": user.dock_id}
    with CustodyLog(session, actor) as log:
        changes = {key: {"old": before[key], "new": after[key]} for key in before if before[key] != after[key]}
        log.record("roles-changed", f"user:{name}", changes, tool=tool)
    return UserView.of(user)


def ensure_first_admin(session: Session, *, tool: str, actor: str = "system") -> str | None:
    """When no enabled account holds the admin role, add ``admin`` with a random one-time password
    it must change at the first sign-in, and return that password (for the caller to show once);
    None when an admin exists. Records ``user-added``."""
    if _admins(session):
        return None
    if session.exec(select(UserAccount.id).where(UserAccount.name == FIRST_ADMIN)).first():
        raise ConflictError(
            f"no enabled admin, and an account named {FIRST_ADMIN} exists: "
            f"enable it or give it the admin role (evidence user enable/role {FIRST_ADMIN})"
        )
    password = random_password()
    try:
        with session.begin_nested():  # another process may be making the first admin right now
            add_user(
                session,
                name=FIRST_ADMIN,
                roles=[Role.ADMIN],
                password=password,
                must_change_password=True,
                actor=actor,
                tool=tool,
            )
    except IntegrityError:
        return None
    return password
