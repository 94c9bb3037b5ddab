"""Signing in from a browser: a password checked against its hash, an account locked after five
wrong passwords in a row and a client address slowed after twenty failures, and a web session
whose cookie holds a random secret the catalog keeps only as its SHA-256. Every attempt is kept
(``LoginAttempt``) and is a custody event; no password or secret is ever recorded."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NoReturn

from sqlmodel import Session, col, delete, select

from pipeline.accounts.passwords import hash_password, needs_rehash, verify_password
from pipeline.accounts.rules import (
    CLIENT_LIMIT,
    CLIENT_WINDOW,
    KEEP_ATTEMPTS,
    LOCK_AFTER,
    LOCK_FOR,
    NAME_LENGTH,
    TOUCH_EVERY,
)
from pipeline.accounts.views import UserView, viewer_for_user
from pipeline.catalog.people import LoginAttempt, UserAccount, WebSession
from pipeline.catalog.types import iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import AccountLocked, AuthError, LoginRefused, LoginThrottled

ANONYMOUS = "anonymous"  # signs the custody events of refused sign-ins: nobody has proved who they are
REFUSED = "wrong name or password"
_SECRET_LENGTH = 200  # a cookie longer than any secret made here is not looked up


@dataclass(frozen=True)
class SignIn:
    """A signed-in browser. ``secret`` is the cookie's value and ``csrf_token`` goes in every form;
    neither is stored in clear nor shown again."""

    secret: str
    csrf_token: str
    user: UserView
    must_change_password: bool
    expires_at: datetime
    session_id: str
    viewer: Viewer

    def as_json(self) -> dict[str, Any]:
        """The account and the session's end; never the secrets."""
        return {
            "user": self.user.as_json(),
            "must_change_password": self.must_change_password,
            "expires_at": iso(self.expires_at),
        }


def session_key(secret: str) -> str:
    """The catalog's key of a web session: the SHA-256 of its cookie secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _clean(text: str | None, length: int) -> str | None:
    """Text from outside (a name typed at the sign-in form, a client address) fit to be stored:
    control characters replaced, cut to ``length``."""
    if text is None:
        return None
    return "".join(c if c.isprintable() else "\ufffd" for c in text[:length])


@cache
def _decoy_hash() -> str:
    """A hash to check unknown names against, so they take as long to refuse as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _throttled_until(session: Session, client: str, now: datetime) -> datetime | None:
    """When a client that failed more than CLIENT_LIMIT times within CLIENT_WINDOW may try again."""
    failures = session.exec(
        select(LoginAttempt.at)
        .where(LoginAttempt.client == client, col(LoginAttempt.ok).is_(False), LoginAttempt.at >= now - CLIENT_WINDOW)
        .order_by(col(LoginAttempt.at).desc())
        .limit(CLIENT_LIMIT)
    ).all()
    return failures[-1] + CLIENT_WINDOW if len(failures) >= CLIENT_LIMIT else None


def _unknown_name_state(session: Session, name: str) -> tuple[int, datetime | None]:
    """Failures in a row and lock time for a name no account holds, replayed from its recent
    attempts exactly as an account counts them, so a lock-out never tells whether a name exists."""
    attempts = session.exec(
        select(LoginAttempt).where(LoginAttempt.name == name).order_by(col(LoginAttempt.at).desc()).limit(200)
    ).all()
    count, until = 0, None
    for attempt in reversed(attempts):
        if until is not None and attempt.at < until:
            continue
        until = None
        count = 0 if attempt.ok else count + 1
        if count >= LOCK_AFTER:
            count, until = 0, attempt.at + LOCK_FOR
    return count, until


def _forget_old_attempts(session: Session, now: datetime) -> None:
    """Drop attempts older than KEEP_ATTEMPTS, which no limit looks at any more."""
    session.exec(delete(LoginAttempt).where(col(LoginAttempt.at) < now - KEEP_ATTEMPTS))


def sign_in(
    session: Session, *, name: str, password: str, client: str | None, lifetime: timedelta, tool: str
) -> SignIn:
    """Check ``name`` and ``password`` and open a web session lasting ``lifetime``.

    An unknown name, a wrong password, an account without a password and a disabled account are
    all refused with the same :class:`LoginRefused`. The fifth wrong password in a row locks the
    account for 15 minutes (:class:`AccountLocked`, also for names no account holds); a client
    address with more than 20 failures in 15 minutes is refused unchecked (:class:`LoginThrottled`).
    Every attempt is recorded (``login`` or ``login-failed``) and committed here, refused or not,
    since a refusal is raised; attempts are kept for the limits for KEEP_ATTEMPTS, then dropped."""
    now = utcnow()
    given = _clean(name, NAME_LENGTH) or ""
    client = _clean(client, 255)
    _forget_old_attempts(session, now)

    def refuse(reason: str, error: AuthError) -> NoReturn:
        session.add(LoginAttempt(name=given, client=client, ok=False, at=now))
        with CustodyLog(session, ANONYMOUS) as log:
            log.record("login-failed", f"user:{given}", {"client": client, "reason": reason}, tool=tool)
        session.commit()
        raise error

    if client is not None and (until := _throttled_until(session, client, now)):
        refuse("throttled", LoginThrottled(until))
    user = session.exec(select(UserAccount).where(UserAccount.name == given).with_for_update()).first()
    if user is None:
        count, locked = _unknown_name_state(session, given)
        if locked is not None and locked > now:
            refuse("locked", AccountLocked(locked))
        verify_password(_decoy_hash(), password)
        if count + 1 >= LOCK_AFTER:
            refuse("unknown-name", AccountLocked(now + LOCK_FOR))
        refuse("unknown-name", LoginRefused(REFUSED))
    if user.locked_until is not None and user.locked_until > now:
        refuse("locked", AccountLocked(user.locked_until))
    if user.failed_logins and not session.exec(select(LoginAttempt.id).where(LoginAttempt.name == given)).first():
        user.failed_logins = 0  # its streak is older than the attempts kept, as for an unknown name
    right = verify_password(user.password_hash or _decoy_hash(), password) and user.password_hash is not None
    if not right:
        user.failed_logins += 1
        error: AuthError = LoginRefused(REFUSED)
        if user.failed_logins >= LOCK_AFTER:
            user.failed_logins, user.locked_until = 0, now + LOCK_FOR
            error = AccountLocked(user.locked_until)
        session.add(user)
        refuse("wrong-password" if user.password_hash else "no-password", error)
    if user.disabled:
        refuse("disabled", LoginRefused(REFUSED))

    assert user.password_hash is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins, user.locked_until = 0, None
    secret = secrets.token_urlsafe(32)
    web = WebSession(
        id=session_key(secret),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        client=client,
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
    )
    session.add_all([user, web, LoginAttempt(name=given, client=client, ok=True, at=now)])
    with CustodyLog(session, user.name) as log:
        log.record("login", f"user:{user.name}", {"client": client, "expires_at": iso(web.expires_at)}, tool=tool)
    session.commit()
    return SignIn(
        secret=secret,
        csrf_token=web.csrf_token,
        user=UserView.of(user),
        must_change_password=user.must_change_password,
        expires_at=web.expires_at,
        session_id=web.id,
        viewer=viewer_for_user(user, session_id=web.id, client=client),
    )


def viewer_for_session(
    session: Session, *, secret: str, client: str | None, idle: timedelta | None = None
) -> tuple[Viewer, WebSession] | None:
    """The viewer a browser's cookie ``secret`` signs in, with its session; None when the secret is
    unknown, the session expired, was idle longer than ``idle``, was signed out or revoked, or the
    account is disabled. Notes when it was last seen (at most once a minute; the caller commits)."""
    if not secret or len(secret) > _SECRET_LENGTH:
        return None
    now = utcnow()
    web = session.get(WebSession, session_key(secret))
    if web is None or web.revoked_at is not None or web.expires_at <= now:
        return None
    if idle is not None and web.last_seen_at + idle <= now:
        return None
    user = session.get(UserAccount, web.user_id)
    if user is None or user.disabled:
        return None
    if now - web.last_seen_at >= TOUCH_EVERY:
        web.last_seen_at = now
        session.add(web)
    return viewer_for_user(user, session_id=web.id, client=_clean(client, 255)), web


def sign_out(session: Session, *, secret: str, tool: str) -> bool:
    """End the web session the cookie ``secret`` holds; records ``logout``. False when there was no
    such session open."""
    if not secret or len(secret) > _SECRET_LENGTH:
        return False
    web = session.get(WebSession, session_key(secret))
    if web is None or web.revoked_at is not None:
        return False
    web.revoked_at = utcnow()
    session.add(web)
    user = session.get(UserAccount, web.user_id)
    name = user.name if user else web.user_id
    with CustodyLog(session, name) as log:
        log.record("logout", f"user:{name}", {"client": web.client}, tool=tool)
    return True


def revoke_sessions(session: Session, *, user_id: str, except_id: str | None = None) -> int:
    """End every open web session of the account ``user_id`` but ``except_id``; how many ended.
    The caller records why (a disabled account, a new password)."""
    now = utcnow()
    open_sessions = session.exec(
        select(WebSession).where(
            WebSession.user_id == user_id, col(WebSession.revoked_at).is_(None), WebSession.expires_at > now
        )
    ).all()
    ended = 0
    for web in open_sessions:
        if web.id != except_id:
            web.revoked_at = now
            session.add(web)
            ended += 1
    return ended


def check_csrf(web_session: WebSession, token: str) -> bool:
    """Whether a form's ``token`` is its session's CSRF token (compared in constant time)."""
    if not token:
        return False
    return hmac.compare_digest(web_session.csrf_token.encode(), token.encode("utf-8", "surrogatepass"))
