"""Copying: open one source safely (no symbolic links, regular files only), copy it into the store
while hashing it (or, for the pipeline's own files, have the store adopt it), check that it did not
change meanwhile, and keep the sighting's lease alive while a long copy runs."""

from __future__ import annotations

import errno
import logging
import os
import stat
from datetime import timedelta

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Sighting
from pipeline.catalog.types import utcnow
from pipeline.errors import IntakeError, SourceChangedError, SourceReadError, SystemFault, TransientError, describe
from pipeline.ingest.context import IntakeContext, Work
from pipeline.stage.names import readable

logger = logging.getLogger(__name__)


def _renew_lease(ctx: IntakeContext, sighting_id: str, worker: str) -> None:
    with session_scope(ctx.engine) as session:
        sighting = session.get(Sighting, sighting_id, with_for_update=True)
        if sighting is None or sighting.lease_owner != worker:
            raise IntakeError(sighting_id, "lease lost to another worker; stopping this copy")
        sighting.lease_until = utcnow() + timedelta(seconds=ctx.lease_seconds)
        session.add(sighting)


def _open_source(path: bytes) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise IntakeError(readable(path), "vanished before it could be read") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntakeError(readable(path), "is a symbolic link; only regular files are taken in") from exc
        raise IntakeError(readable(path), f"cannot be read: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IntakeError(readable(path), "is not a regular file")
    return fd


def copy_one(ctx: IntakeContext, work: Work, worker: str, *, durable: bool) -> None:
    """Copy one source into the store. Sets ``work.stored``, ``work.failure`` (the file's fault),
    ``work.system`` (the store's) or ``work.changed``; raises only :class:`TransientError` (the
    catalog went away while renewing the lease: the whole batch is tried again)."""
    work.name = work.name or os.path.basename(work.path)
    try:
        fd = _open_source(work.path)
    except IntakeError as exc:
        work.failure = exc.reason
        work.quarantine = os.path.lexists(work.path)
        return
    try:
        before = os.fstat(fd)
        work.size, work.mtime_ns = before.st_size, before.st_mtime_ns
        if before.st_size == 0:
            work.failure = "zero-byte file: nothing was recorded, not catalogued as evidence"
            work.quarantine = True
            return

        def beat(_offset: int) -> None:
            _renew_lease(ctx, work.id, worker)

        stored = None
        if ctx.owns(work.path):
            stored = ctx.store.adopt(
                fd,
                algorithms=ctx.algorithms,
                durable=durable,
                heartbeat=beat,
                expect_sha256=work.known.sha256,
                read_back=work.known.read_back,
            )
        if stored is None:
            stored = ctx.store.put(
                fd, algorithms=ctx.algorithms, durable=durable, heartbeat=beat, expect_sha256=work.known.sha256
            )
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
            stored.size != before.st_size
        ):
            raise SourceChangedError(work.shown, "changed while it was being copied (still being written)")
        work.stored = stored
    except SourceChangedError:
        work.changed = True
    except SourceReadError as exc:
        work.failure = exc.reason
        work.quarantine = True
    except TransientError:
        raise
    except SystemFault as exc:  # the store cannot take it now: the source stays, to be tried again
        work.system = f"{exc}; the file stays where it is and is taken in once the store is fixed"
    except IntakeError as exc:  # the lease went to another worker, which reports the outcome
        work.failure = str(exc)
    except Exception as exc:  # a defect: this file fails, with the reason; the batch goes on
        logger.exception("intake of %s failed", work.shown)
        work.failure = f"stage-error: {describe(exc)}"
    finally:
        os.close(fd)
