"""One base exception; subclasses carry the facts a person needs to act on the failure.

Every failure falls into one of three kinds, and each kind is handled the same way in every stage:

- **content** (:class:`ContentError` and the stages' own content errors): the file is odd, damaged,
  unsupported, or a tool refuses it. Recorded on the item or sighting with a code and a plain
  message; never retried, never stops the batch.
- **system** (:class:`SystemFault`: :class:`TransientError`, :class:`StoreError`,
  :class:`ToolUnavailableError`): something the pipeline depends on failed (database, broker, store
  disk, a program that is missing). Retried with back-off by the workers and reported on the command
  line; the dock's source stays where it is and nothing half-written stays in the store.
- **bug**: any other exception inside one item's stage. Caught at the item's boundary, recorded on
  that item as ``stage-error`` with the exception's text, logged with its traceback; the batch goes on.
"""

from __future__ import annotations

import errno
from datetime import datetime
from pathlib import Path


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ContentError(PipelineError):
    """The file itself is the problem (odd, damaged, unsupported): record it, never retry it."""


class SystemFault(PipelineError):
    """A system the pipeline depends on failed; the file is not to blame. Retry, never record the
    file as bad."""


class TransientError(SystemFault):
    """A system that should come back soon (broker, database, object store): retry with backoff."""


class ToolUnavailableError(SystemFault):
    """A program the stage needs is not installed or cannot be started."""


class IntakeError(PipelineError):
    """A file could not be taken in. ``path`` names it; the message says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class SourceChangedError(IntakeError):
    """The file changed while it was being copied: it was not complete yet."""


class SourceReadError(IntakeError, ContentError):
    """The dock's file could not be read (an I/O error on the source side of the copy)."""


class DigestMismatch(SourceReadError):
    """The file's SHA-256 is not the one its sender declared: it was changed on the way, and is
    not stored under either digest."""


class StoreError(SystemFault):
    """The object store could not write or read an object."""


class StoreFullError(StoreError):
    """The store has no room (or no quota) for the object; the source stays where it is."""


# Errors of the store's own disk: the store cannot take objects until a person acts.
_STORE_ERRNOS = {
    errno.ENOSPC: "store full (no space left on its disk)",
    errno.EDQUOT: "store full (disk quota exceeded)",
    errno.EROFS: "store is read-only",
    errno.EIO: "store disk I/O error",
    errno.EACCES: "store not writable (permission denied)",
    errno.EPERM: "store not writable (operation not permitted)",
}


def store_error(exc: OSError, what: str = "") -> StoreError:
    """The :class:`StoreError` for an ``OSError`` raised on the store's side of a copy."""
    reason = _STORE_ERRNOS.get(exc.errno or 0) or f"store error: {exc.strerror or exc}"
    message = f"{reason}{f' while {what}' if what else ''}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(message)
    return StoreError(message)


class NotFoundError(PipelineError):
    """No catalog entry matches what was asked for."""


class ConflictError(PipelineError):
    """The request contradicts what the catalog holds (a capture time after the record arrived, say)."""


class ForbiddenError(PipelineError):
    """The acting user may know the record exists but may not do this with it (a role they do not
    hold, an approval of their own request). Anything they may not know exists is a
    :class:`NotFoundError` instead."""


class WithheldError(ForbiddenError):
    """A ``trade-secret`` or ``state-secret`` record is shown only under an approved, unexpired
    access request; ``item`` names it."""

    def __init__(self, item: str, message: str | None = None) -> None:
        super().__init__(message or f"{item}: withheld; an approved access request is needed to see it")
        self.item = item


class PurposeRequiredError(ForbiddenError):
    """A ``privacy`` record is shown once its purpose is stated (once per item and session); ``item``
    names it."""

    def __init__(self, item: str) -> None:
        super().__init__(f"{item}: personal privacy; state the purpose of this retrieval to see it")
        self.item = item


class InvalidValueError(PipelineError, ValueError):
    """A value a person gave cannot be used (a time that cannot be read or lies in the future, an
    unknown field); the message quotes the value and says why."""


class AuthError(PipelineError):
    """Signing in, or proving who one is, was refused."""


class LoginRefused(AuthError):
    """A sign-in was refused. The message is the same for an unknown name, a wrong password and an
    account that may not sign in, so it never tells which names exist."""


class AccountLocked(AuthError):
    """Too many wrong passwords in a row: the account opens again at ``until`` (UTC)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins: the account is locked until {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


class LoginThrottled(AuthError):
    """Too many failed sign-ins from one client address: it may try again at ``until`` (UTC)."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many failed sign-ins from this address: try again after {until:%Y-%m-%d %H:%M} UTC")
        self.until = until


class PasswordRejected(AuthError, InvalidValueError):
    """A new password is too weak, or the current one given to change it is wrong; ``reason`` says
    which, and never quotes the password."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"password refused: {reason}")
        self.reason = reason


def describe(exc: BaseException) -> str:
    """An exception's text for a person: its message, or its type when it has none."""
    text = str(exc).strip()
    if isinstance(exc, PipelineError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
