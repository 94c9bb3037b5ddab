"""Builds the long-lived objects (catalog engine, store, intake context) from the settings."""

from __future__ import annotations

import socket

from sqlalchemy import Engine

from pipeline.catalog.db import get_engine, migrate
from pipeline.ingest.intake import IntakeContext
from pipeline.settings import Settings
from pipeline.storage import LocalStore, ObjectStore

_migrated: set[str] = set()


def open_catalog(settings: Settings) -> Engine:
    """The catalog engine, its schema brought up to date once per process."""
    url = settings.effective_database_url
    engine = get_engine(url)
    if url not in _migrated:
        migrate(engine)
        _migrated.add(url)
    return engine


def open_store(settings: Settings) -> ObjectStore:
    return LocalStore(settings.store_dir, chunk_size=settings.copy_chunk_size)


def intake_context(settings: Settings, *, actor: str | None = None) -> IntakeContext:
    settings.ensure_dirs()
    return IntakeContext(
        engine=open_catalog(settings),
        store=open_store(settings),
        actor=actor or settings.effective_actor,
        inbox_dir=settings.inbox_dir,
        processed_dir=settings.processed_dir,
        quarantine_dir=settings.quarantine_dir,
        algorithms=tuple(settings.extra_digests),
        lease_seconds=settings.lease_seconds,
        quiet_period=settings.quiet_period,
        stale_after=settings.stale_after,
    )


def process_name(role: str) -> str:
    """How a process signs custody events and leases: role, host and pid."""
    import os

    return f"{role}@{socket.gethostname()}:{os.getpid()}"
