"""Catalog tables for the people and machines that use the pipeline: accounts, API tokens, web
sessions, login attempts, who handles which case, and supervised access (purposes stated, access
requests and their grants). Secrets are stored only as hashes. Times are UTC."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index, Text, false
from sqlmodel import Field, SQLModel

from pipeline.catalog.types import UTCDateTime, new_id, utcnow


class Role(StrEnum):
    """What a person or machine does (ACCESS.md); a user may hold several."""

    ADMIN = "admin"
    CUSTODIAN = "custodian"
    CASE_HANDLER = "case-handler"
    AUDITOR = "auditor"
    DOCK = "dock"


class Classification(StrEnum):
    """An item's or case's confidentiality class. ``unclassified`` is an item no custodian has
    classified yet (a review queue); for access it counts as ``none``."""

    UNCLASSIFIED = "unclassified"
    NONE = "none"
    PRIVACY = "privacy"  # 个人隐私
    TRADE_SECRET = "trade-secret"  # 商业秘密
    STATE_SECRET = "state-secret"  # 国家秘密


# Stricter last: an item's class is its own or its case's, whichever comes later here.
STRICTNESS = (
    Classification.UNCLASSIFIED,
    Classification.NONE,
    Classification.PRIVACY,
    Classification.TRADE_SECRET,
    Classification.STATE_SECRET,
)
# The classes a user can be cleared for (``none`` needs no clearance).
CLEARABLE = (Classification.PRIVACY, Classification.TRADE_SECRET, Classification.STATE_SECRET)


class AccessStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"


class UserAccount(SQLModel, table=True):
    """A person's account (or a dock's machine account). ``roles`` and ``clearances`` are lists of
    :class:`Role` and :data:`CLEARABLE` values; ``approver`` may grant access requests."""

    __tablename__ = "user_account"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    name: str = Field(max_length=100, unique=True, index=True)
    display_name: str | None = Field(default=None, max_length=200)
    password_hash: str | None = Field(default=None, sa_type=Text)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    clearances: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    approver: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    dock_id: str | None = Field(default=None, max_length=255)
    disabled: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    must_change_password: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    failed_logins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    password_changed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    """A bearer token for a dock or a script: shown once when made, kept as its SHA-256 (the secret
    is random, so a plain hash is enough); ``prefix`` finds it without revealing it."""

    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    name: str = Field(max_length=100, unique=True, index=True)
    prefix: str = Field(max_length=16, unique=True, index=True)
    secret_hash: str = Field(max_length=64)
    role: str = Field(max_length=32)
    dock_id: str | None = Field(default=None, max_length=255)
    clearances: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random secret, the catalog its SHA-256 (``id``)."""

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="user_account.id", max_length=26, index=True)
    csrf_token: str = Field(max_length=64)
    client: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginAttempt(SQLModel, table=True):
    """One try to sign in, kept for rate limiting by account and by client address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_name_at", "name", "at"),
        Index("ix_login_attempt_client_at", "client", "at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    name: str = Field(max_length=100)
    client: str | None = Field(default=None, max_length=255)
    ok: bool
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CaseMember(SQLModel, table=True):
    """A case handler assigned to a case: they see that case's records and nothing else."""

    __tablename__ = "case_member"

    case_number: str = Field(foreign_key="case.number", primary_key=True, max_length=100)
    user_id: str = Field(foreign_key="user_account.id", primary_key=True, max_length=26, index=True)
    assigned_by: str = Field(max_length=255)
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StatedPurpose(SQLModel, table=True):
    """The purpose a user stated before seeing a ``privacy`` item, once per item and session."""

    __tablename__ = "stated_purpose"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    session_id: str = Field(max_length=64, index=True)
    user_id: str = Field(foreign_key="user_account.id", max_length=26)
    item_id: str = Field(foreign_key="item.id", max_length=26, index=True)
    purpose: str = Field(sa_type=Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AccessRequest(SQLModel, table=True):
    """A request to see ``trade-secret`` or ``state-secret`` records (one item, or every record of
    a case) for a purpose; an approver who is not the requester grants it for a time window."""

    __tablename__ = "access_request"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    requester_id: str = Field(foreign_key="user_account.id", max_length=26, index=True)
    item_id: str | None = Field(default=None, foreign_key="item.id", max_length=26, index=True)
    case_number: str | None = Field(default=None, max_length=100, index=True)
    purpose: str = Field(sa_type=Text)
    status: str = Field(default=AccessStatus.PENDING, max_length=16, index=True)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=26)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decision_note: str | None = Field(default=None, sa_type=Text)
    valid_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
