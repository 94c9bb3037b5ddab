"""The stage layer: what every stage (intake, probe, derive, package, fixity) shares and nothing
above it owns — the tool name for the record, stage status bookkeeping, the registry of issue codes,
the runner for external programs, and how file names are keyed and shown.

Imports run one way: settings and errors, then the catalog, store and custody log, then this layer,
then the readers (metadata, deadline), then the stages, then orchestration, then the interfaces.
"""

from pipeline import __version__

TOOL = f"evidence-pipeline {__version__}"
