"""What every stage runs with: the catalog, the store, who acts, and the tool name its custody
events and stage runs record. Each stage's own context extends it with that stage's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Engine

from pipeline import __version__
from pipeline.storage.base import ObjectStore

TOOL = f"evidence-pipeline {__version__}"

# Intake writes to any store; the stages that hand ffmpeg a path need a LocalStore.
StoreT = TypeVar("StoreT", bound=ObjectStore, covariant=True)


@dataclass(frozen=True, kw_only=True)
class StageContext(Generic[StoreT]):
    """Built once from the settings by ``pipeline.runtime``; a stage never reads settings itself."""

    engine: Engine
    store: StoreT
    actor: str
    tool: str = TOOL
