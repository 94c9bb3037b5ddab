"""The stage layer: what every stage (intake, probe, derive, package, fixity) shares and nothing
above it owns — the context every stage runs with (context.py) and the tool name for the record,
stage status bookkeeping, the registry of issue codes, the runner for external programs, and how
file names are keyed and shown.

Imports run one way: settings and errors, then the catalog, store and custody log, then this layer,
then the readers (metadata, deadline), then the stages, then orchestration, then the interfaces.
"""

from pathlib import Path

from pipeline.errors import StoreError
from pipeline.stage.context import TOOL, StageContext
from pipeline.storage.local import LocalStore

__all__ = ["TOOL", "StageContext", "stored_original"]


def stored_original(store: LocalStore, sha256: str, item_id: str) -> Path:
    """The path of an item's stored original for a stage to read; a missing one is the store's fault
    (a :class:`StoreError`), never the file's."""
    path = store.path(sha256)
    if not path.is_file():
        raise StoreError(f"the stored copy {store.key(sha256)} is missing; run `evidence fixity {item_id}`")
    return path
