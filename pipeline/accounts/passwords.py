"""Passwords: hashed with Argon2id, checked for strength before they are set, and made at random
for a first sign-in. A password is never logged, recorded or shown back."""

from __future__ import annotations

import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.errors import PasswordRejected

MIN_LENGTH = 12
MAX_LENGTH = 1024  # hashing is deliberately slow; a megabyte of "password" is refused, not hashed
# Lower-case letters and digits a person cannot mistake for one another (no 0/o, 1/l/i).
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"

_hasher = PasswordHasher()  # Argon2id with the RFC 9106 low-memory parameters


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (``$argon2id$…``, salt included)."""
    return _hasher.hash(password)


def verify_password(hash: str, password: str) -> bool:
    """Whether ``password`` matches ``hash``; a damaged or foreign hash matches nothing."""
    try:
        return _hasher.verify(hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(hash: str) -> bool:
    """Whether ``hash`` was made with weaker parameters than today's (rehash on the next sign-in)."""
    try:
        return _hasher.check_needs_rehash(hash)
    except InvalidHashError:
        return True


def _classes(password: str) -> int:
    """How many of lower-case, upper-case, digits and other characters the password uses."""
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def check_strength(password: str, *, name: str) -> None:
    """Refuse a password that is easy to guess, with :class:`PasswordRejected` saying why: shorter
    than 12 characters, longer than 1024, holding control characters, containing the account's
    name, of one kind of character only (all lower-case letters, all digits…), or of fewer than
    five different characters."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejected(f"it must be at least {MIN_LENGTH} characters long (it has {len(password)})")
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(f"it must be at most {MAX_LENGTH} characters long")
    if any(unicodedata.category(c) == "Cc" for c in password):
        raise PasswordRejected("it contains control characters (a tab, a line break, …)")
    folded = password.casefold()
    if name and (folded == name.casefold() or (len(name) >= 4 and name.casefold() in folded)):
        raise PasswordRejected("it contains the account's name")
    if _classes(password) < 2:
        raise PasswordRejected(
            "it uses only one kind of character: mix lower-case, upper-case, digits or punctuation and spaces"
        )
    if len(set(folded)) < 5:
        raise PasswordRejected("it repeats too few different characters")


def random_password() -> str:
    """A random one-time password a person can read and type: four groups of five letters and
    digits, like ``k7wq2-mhx9t-…`` (about 100 bits)."""
    groups = ("".join(secrets.choice(_READABLE) for _ in range(5)) for _ in range(4))
    return "-".join(groups)
