"""What commands read before they act: the settings, who acts (the server's own authority, or the
account named with ``evidence --as NAME``), and the items a person names by ID or hash."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import click
from pydantic import ValidationError

from pipeline.errors import ForbiddenError, NotFoundError
from pipeline.settings import Settings, load_settings

if TYPE_CHECKING:  # the catalog is imported when a command reads it: `ingest` starts without queries
    from sqlmodel import Session

    from pipeline.catalog.models import Item
    from pipeline.catalog.people import UserAccount
    from pipeline.catalog.viewer import Viewer

BATCH = 500  # items handled per transaction by the commands that work through many


def read_settings() -> Settings:
    """The settings, or a plain error naming what is wrong with them."""
    try:
        return load_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc


def acting_as() -> str | None:
    """The account named with the ``evidence --as NAME`` option, if any."""
    context = click.get_current_context(silent=True)
    options = context.find_root().obj if context is not None else None
    return options.get("acting_as") if isinstance(options, dict) else None


def account_viewer(account: UserAccount) -> Viewer:
    """The viewer an account acts as on the command line: its roles, clearances and approver right
    (values the catalog does not know are left out)."""
    from pipeline.catalog.people import CLEARABLE, Classification, Role
    from pipeline.catalog.viewer import Viewer

    return Viewer(
        name=account.name,
        roles=frozenset(Role(r) for r in account.roles if r in set(Role)),
        clearances=frozenset(Classification(c) for c in account.clearances if c in CLEARABLE),
        user_id=account.id,
        approver=account.approver,
        dock=account.dock_id,
    )


def acting_viewer(settings: Settings) -> Viewer:
    """Who the command acts as: the account named with ``--as NAME`` (:class:`NotFoundError` when
    there is none by that name or it is disabled), or else the server's own authority, signed with
    the operating-system user (or the ``actor`` setting)."""
    from sqlmodel import col, select

    from pipeline.catalog.db import session_scope
    from pipeline.catalog.people import UserAccount
    from pipeline.catalog.viewer import Viewer
    from pipeline.runtime import open_catalog

    name = acting_as()
    if name is None:
        return Viewer.local(settings.effective_actor)
    with session_scope(open_catalog(settings)) as session:
        account = session.exec(
            select(UserAccount).where(UserAccount.name == name, col(UserAccount.disabled).is_(False))
        ).first()
        if account is None:
            raise NotFoundError(f"no account {name!r} (or it is disabled)")
        return account_viewer(account)


def find_item(session: Session, ident: str, *, viewer: Viewer) -> Item:
    """An item the viewer may see, by ID or SHA-256, or a unique prefix (6 characters or more) of either."""
    from pipeline.catalog import queries

    try:
        return queries.find_item(session, ident, viewer=viewer)
    except (NotFoundError, ForbiddenError) as exc:
        raise click.ClickException(str(exc)) from exc


def find_items(session: Session, idents: Iterable[str], *, viewer: Viewer) -> tuple[list[str], list[tuple[str, str]]]:
    """The IDs of the named items in the order given, and each name that finds no single item the
    viewer may see, with why."""
    found: list[str] = []
    unknown: list[tuple[str, str]] = []
    for ident in idents:
        try:
            found.append(find_item(session, ident, viewer=viewer).id)
        except click.ClickException as exc:
            unknown.append((ident, exc.message))
    return found, unknown
