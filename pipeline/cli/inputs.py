"""What commands read before they act: the settings, and the items a person names by ID or hash."""

from __future__ import annotations

from collections.abc import Iterable

import click
from pydantic import ValidationError
from sqlmodel import Session

from pipeline.catalog import queries
from pipeline.catalog.models import Item
from pipeline.errors import NotFoundError
from pipeline.settings import Settings, load_settings

BATCH = 500  # items handled per transaction by the commands that work through many


def read_settings() -> Settings:
    """The settings, or a plain error naming what is wrong with them."""
    try:
        return load_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc


def find_item(session: Session, ident: str) -> Item:
    """An item by ID or SHA-256, or a unique prefix (6 characters or more) of either."""
    try:
        return queries.find_item(session, ident)
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from exc


def find_items(session: Session, idents: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The IDs of the named items in the order given, and each name that finds no single item with why."""
    found: list[str] = []
    unknown: list[tuple[str, str]] = []
    for ident in idents:
        try:
            found.append(find_item(session, ident).id)
        except click.ClickException as exc:
            unknown.append((ident, exc.message))
    return found, unknown
