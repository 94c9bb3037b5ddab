"""API tokens for docks and scripts: ``evd_<prefix>_<secret>``, shown once when made and kept as
the prefix (to find it) and the SHA-256 of the whole token (the secret is random, so a plain hash
is enough). Making and revoking one are custody events naming the token, never its secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from pipeline.accounts.rules import TOUCH_EVERY, check_clearances, check_name, check_roles, shown
from pipeline.catalog.people import CLEARABLE, ApiToken, Classification, Role
from pipeline.catalog.types import iso, utcnow
from pipeline.catalog.viewer import Viewer
from pipeline.custody import CustodyLog
from pipeline.errors import ConflictError, InvalidValueError, NotFoundError

SCHEME = "evd"
PREFIX_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN_LENGTH = 200  # longer than any token made here: not looked up


@dataclass(frozen=True)
class NewToken:
    """A token just made. ``token`` is its secret, shown this once and never again."""

    name: str
    role: str
    dock: str | None
    clearances: tuple[str, ...]
    expires_at: datetime | None
    token: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "dock": self.dock,
            "clearances": list(self.clearances),
            "expires_at": iso(self.expires_at),
            "token": self.token,
        }


@dataclass(frozen=True)
class TokenView:
    """A token as people may see it: its prefix, never its secret or hash."""

    name: str
    prefix: str
    role: str
    dock: str | None
    clearances: tuple[str, ...]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    expired: bool

    @classmethod
    def of(cls, token: ApiToken) -> TokenView:
        return cls(
            name=token.name,
            prefix=token.prefix,
            role=token.role,
            dock=token.dock_id,
            clearances=tuple(token.clearances),
            created_by=token.created_by,
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            expired=bool(token.expires_at and token.expires_at <= utcnow()),
        )

    @property
    def usable(self) -> bool:
        return self.revoked_at is None and not self.expired

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prefix": self.prefix,
            "role": self.role,
            "dock": self.dock,
            "clearances": list(self.clearances),
            "created_by": self.created_by,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
            "expired": self.expired,
            "usable": self.usable,
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    session: Session,
    *,
    name: str,
    role: str,
    dock: str | None = None,
    clearances: Iterable[str] = (),
    expires_at: datetime | None = None,
    actor: str,
    tool: str,
) -> NewToken:
    """Make the token ``name`` acting with one ``role`` (a dock token for its ``dock`` only);
    records ``token-created``. The secret is in the result and nowhere else."""
    check_name(name, what="token")
    (checked_role,) = check_roles([role], dock=dock)
    checked_clearances = [c.value for c in check_clearances(clearances)]
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
        raise InvalidValueError(f"a token's expiry must be a time in the future (UTC), not {expires_at}")
    if session.exec(select(ApiToken.id).where(ApiToken.name == name)).first():
        raise ConflictError(f"a token named {name} already exists")
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    token = f"{SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken(
        name=name,
        prefix=prefix,
        secret_hash=token_hash(token),
        role=checked_role.value,
        dock_id=dock,
        clearances=checked_clearances,
        created_by=actor,
        expires_at=expires_at,
    )
    session.add(row)
    with CustodyLog(session, actor) as log:
        details = {"role": row.role, "dock": dock, "clearances": checked_clearances, "expires_at": iso(expires_at)}
        log.record("token-created", f"token:{name}", details, tool=tool)
    return NewToken(name, row.role, dock, tuple(checked_clearances), expires_at, token)


def list_tokens(session: Session) -> list[TokenView]:
    """Every token, by name, revoked and expired ones included."""
    return [TokenView.of(t) for t in session.exec(select(ApiToken).order_by(col(ApiToken.name))).all()]


def revoke_token(session: Session, *, name: str, actor: str, tool: str) -> TokenView:
    """Revoke the token ``name`` at once; records ``token-revoked``."""
    row = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if row is None:
        raise NotFoundError(f"no token named {shown(name)}")
    if row.revoked_at is not None:
        raise ConflictError(f"token {name} was already revoked at {iso(row.revoked_at)}")
    row.revoked_at = utcnow()
    session.add(row)
    with CustodyLog(session, actor) as log:
        log.record("token-revoked", f"token:{name}", {"role": row.role, "dock": row.dock_id}, tool=tool)
    return TokenView.of(row)


def viewer_for_token(session: Session, *, token: str, client: str | None) -> Viewer | None:
    """The viewer a bearer ``token`` acts as (named ``token:<name>``, holding the token's one role,
    clearances and dock); None when it is malformed, unknown, revoked or expired. Notes when it was
    last used (at most once a minute; the caller commits)."""
    if not token or len(token) > _TOKEN_LENGTH:
        return None
    scheme, _, rest = token.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != SCHEME or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    row = session.exec(select(ApiToken).where(ApiToken.prefix == prefix)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, token_hash(token)):
        return None
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now
        session.add(row)
    return Viewer(
        name=f"token:{row.name}",
        roles=frozenset({Role(row.role)}),
        clearances=frozenset(Classification(c) for c in row.clearances if c in CLEARABLE),
        dock=row.dock_id,
        client=client[:255] if client else None,
    )
