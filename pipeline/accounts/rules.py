"""What an account or token may be called and hold: names, roles and clearances, each refused with
a message that says what is wrong (quoting at most the start of a hostile value, escaped)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from pipeline.catalog.people import CLEARABLE, Classification, Role
from pipeline.errors import InvalidValueError

NAME_LENGTH = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*", re.ASCII)

# Sign-in limits: an account locks after LOCK_AFTER wrong passwords in a row, for LOCK_FOR; a client
# address that failed more than CLIENT_LIMIT times within CLIENT_WINDOW is refused until it is quiet.
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
CLIENT_LIMIT = 20
CLIENT_WINDOW = timedelta(minutes=15)
# last_seen_at and last_used_at are written at most this often.
TOUCH_EVERY = timedelta(minutes=1)
# Sign-in attempts are kept this long (the custody log keeps every one for good); a streak of wrong
# passwords older than that is forgotten, for accounts and for names no account holds alike.
KEEP_ATTEMPTS = timedelta(days=30)


def shown(value: str, limit: int = 40) -> str:
    """A value a person typed, fit for one line of an error: escaped, and cut after ``limit``
    characters."""
    text = repr(value[:limit])
    return f"{text}… ({len(value)} characters)" if len(value) > limit else text


def check_name(name: str, *, what: str = "account", length: int = NAME_LENGTH) -> str:
    """``name`` when it can name an account, token or dock: 1 to 100 ASCII letters, digits and
    ``. _ - @``, starting with a letter or digit."""
    if not name:
        raise InvalidValueError(f"a {what} name cannot be empty")
    if len(name) > length:
        raise InvalidValueError(f"{what} name {shown(name)} is too long: at most {length} characters")
    if not _NAME.fullmatch(name):
        raise InvalidValueError(
            f"{what} name {shown(name)} is not allowed: use ASCII letters, digits and . _ - @ only, "
            "starting with a letter or digit"
        )
    return name


def check_roles(roles: Iterable[str], *, dock: str | None) -> list[Role]:
    """The roles as :class:`Role`, at least one, in a stable order; the dock role needs a dock and
    only the dock role takes one."""
    wanted = set()
    for role in roles:
        try:
            wanted.add(Role(role))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidValueError(f"unknown role {shown(role)}: one of {known}") from None
    if not wanted:
        raise InvalidValueError("give at least one role")
    if Role.DOCK in wanted and not dock:
        raise InvalidValueError("the dock role needs the dock it uploads for (--dock)")
    if dock is not None and Role.DOCK not in wanted:
        raise InvalidValueError("a dock is given only with the dock role")
    if dock is not None:
        check_name(dock, what="dock", length=255)
    return [r for r in Role if r in wanted]


def check_clearances(clearances: Iterable[str]) -> list[Classification]:
    """The clearances as :class:`Classification`, each one of the classes a person can be cleared
    for (``none`` needs no clearance), in order of strictness."""
    wanted = set()
    for name in clearances:
        try:
            cls = Classification(name)
        except ValueError:
            cls = None
        if cls not in CLEARABLE:
            known = ", ".join(c.value for c in CLEARABLE)
            raise InvalidValueError(f"unknown clearance {shown(name)}: one of {known}")
        wanted.add(cls)
    return [c for c in CLEARABLE if c in wanted]
