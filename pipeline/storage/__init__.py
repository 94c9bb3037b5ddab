"""Content-addressed object stores. ``ObjectStore`` is the interface; ``LocalStore`` keeps objects
under the data directory; an S3 store implements the same protocol."""

from pipeline.storage.base import ObjectStore, StoredObject
from pipeline.storage.local import LocalStore

__all__ = ["LocalStore", "ObjectStore", "StoredObject"]
