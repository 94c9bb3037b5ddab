"""Errors of the package stage."""

from __future__ import annotations

from pipeline.errors import PipelineError


class PackageError(PipelineError):
    """A package cannot be made as asked (unknown medium, an item too large, nothing to package)."""


class ItemTooLarge(PackageError):
    def __init__(self, item_id: str, need: int, medium: str, fits: str | None) -> None:
        advice = f"a {fits} holds it" if fits else "no supported medium holds it"
        super().__init__(f"item {item_id} needs {need:,} bytes, more than a {medium} holds; {advice}")
        self.item_id = item_id
        self.need = need
        self.medium = medium
        self.fits = fits
