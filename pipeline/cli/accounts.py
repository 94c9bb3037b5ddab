"""``evidence user`` and ``evidence token``: accounts and API tokens, managed on the server. The
changes themselves are ``pipeline.accounts``, shared with the web application; these commands
parse, call and print. A password made here or a token's secret is printed once, never again."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from sqlmodel import Session

from pipeline.catalog.db import session_scope
from pipeline.catalog.people import CLEARABLE, Role
from pipeline.cli.inputs import read_settings
from pipeline.cli.output import emit, json_option
from pipeline.errors import PipelineError
from pipeline.runtime import open_catalog
from pipeline.settings import Settings
from pipeline.stage import TOOL

ROLES = click.Choice([r.value for r in Role])
CLASSES = click.Choice([c.value for c in CLEARABLE])
PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from one line of standard input (else a random one-time one).",
)


def _when(moment: datetime | None) -> str:
    """A time for people: to the minute, UTC."""
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


@contextmanager
def _catalog() -> Iterator[tuple[Settings, Session]]:
    """The settings and a catalog session; a refusal of the project's own prints as one ``error:``
    line and exits 1, and nothing of the refused change is kept."""
    settings = read_settings()
    try:
        with session_scope(open_catalog(settings)) as session:
            yield settings, session
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _stdin_password() -> str:
    """One line of standard input, without its line break."""
    line = sys.stdin.readline()
    if not line.strip():
        raise click.UsageError("--password-stdin: standard input held no password")
    return line.rstrip("\r\n")


def _one_time_notice(name: str, password: str) -> str:
    return f"one-time password for {name}: {password}\n  shown only now; it must be changed at the first sign-in"


@click.group()
def user() -> None:
    """Accounts: who may sign in, with which roles and clearances."""


@user.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=ROLES, help="A role (repeat for several).")
@click.option(
    "--clearance", "clearances", multiple=True, type=CLASSES, help="A class they are cleared for (repeatable)."
)
@click.option("--approver", is_flag=True, help="May approve access requests to secret records.")
@click.option("--dock", help="The dock a dock account uploads for.")
@click.option("--display-name", help="The name shown on pages (any script).")
@PASSWORD_STDIN
@json_option("One JSON object (with `password` when one was made here).")
def user_add(
    name: str,
    roles: tuple[str, ...],
    clearances: tuple[str, ...],
    approver: bool,
    dock: str | None,
    display_name: str | None,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Add the account NAME."""
    from pipeline.accounts.passwords import random_password
    from pipeline.accounts.users import add_user

    given = _stdin_password() if password_stdin else None
    password = given or random_password()
    with _catalog() as (settings, session):
        view = add_user(
            session,
            name=name,
            roles=roles,
            clearances=clearances,
            password=password,
            approver=approver,
            dock=dock,
            display_name=display_name,
            must_change_password=given is None,
            actor=settings.effective_actor,
            tool=TOOL,
        )
    data = view.as_json() | ({} if given else {"password": password})
    human = f"added {name} ({', '.join(view.roles)})"
    emit(as_json, data, human if given else f"{human}\n{_one_time_notice(name, password)}")


@user.command("list")
@json_option()
def user_list(as_json: bool) -> None:
    """Every account, by name."""
    from pipeline.accounts.users import list_users

    with _catalog() as (_, session):
        views = list_users(session)
    for view in views:
        flags = [
            f for f, on in (("disabled", view.disabled), ("locked", view.locked), ("approver", view.approver)) if on
        ]
        if view.must_change_password:
            flags.append("must change password")
        if not view.has_password:
            flags.append("no password")
        cleared = f" cleared: {', '.join(view.clearances)}" if view.clearances else ""
        dock = f" dock: {view.dock}" if view.dock else ""
        extra = f" [{', '.join(flags)}]" if flags else ""
        emit(as_json, view.as_json(), f"{view.name}  {', '.join(view.roles)}{cleared}{dock}{extra}")


def _switch(name: str, *, enabled: bool, as_json: bool) -> None:
    from pipeline.accounts.users import disable_user

    with _catalog() as (settings, session):
        view = disable_user(session, name=name, enabled=enabled, actor=settings.effective_actor, tool=TOOL)
    emit(as_json, view.as_json(), f"{'enabled' if enabled else 'disabled'} {name}")


@user.command("disable")
@click.argument("name")
@json_option("One JSON object.")
def user_disable(name: str, as_json: bool) -> None:
    """Disable the account NAME: it cannot sign in, and its open sessions end now."""
    _switch(name, enabled=False, as_json=as_json)


@user.command("enable")
@click.argument("name")
@json_option("One JSON object.")
def user_enable(name: str, as_json: bool) -> None:
    """Enable the account NAME again (and lift a lock-out)."""
    _switch(name, enabled=True, as_json=as_json)


@user.command("passwd")
@click.argument("name")
@PASSWORD_STDIN
@json_option("One JSON object (with `password` when one was made here).")
def user_passwd(name: str, password_stdin: bool, as_json: bool) -> None:
    """Set NAME's password; they are signed out everywhere."""
    from pipeline.accounts.passwords import random_password
    from pipeline.accounts.users import set_password

    given = _stdin_password() if password_stdin else None
    password = given or random_password()
    with _catalog() as (settings, session):
        view = set_password(
            session,
            name=name,
            password=password,
            must_change=given is None,
            actor=settings.effective_actor,
            tool=TOOL,
        )
    data = view.as_json() | ({} if given else {"password": password})
    human = f"password of {name} set"
    emit(as_json, data, human if given else _one_time_notice(name, password))


@user.command("role")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=ROLES, help="A role (repeat; replaces all).")
@click.option("--clearance", "clearances", multiple=True, type=CLASSES, help="A clearance (repeat; replaces all).")
@click.option("--no-clearance", is_flag=True, help="Take every clearance away.")
@click.option("--approver/--no-approver", default=None, help="Grant or take away the approver right.")
@click.option("--dock", help="The dock a dock account uploads for.")
@json_option("One JSON object.")
def user_role(
    name: str,
    roles: tuple[str, ...],
    clearances: tuple[str, ...],
    no_clearance: bool,
    approver: bool | None,
    dock: str | None,
    as_json: bool,
) -> None:
    """Replace NAME's roles (and clearances, when given)."""
    from pipeline.accounts.users import set_roles

    if no_clearance and clearances:
        raise click.UsageError("--clearance and --no-clearance contradict each other")
    with _catalog() as (settings, session):
        view = set_roles(
            session,
            name=name,
            roles=roles,
            clearances=() if no_clearance else (clearances or None),
            approver=approver,
            dock=dock,
            actor=settings.effective_actor,
            tool=TOOL,
        )
    cleared = ", ".join(view.clearances) or "none"
    emit(as_json, view.as_json(), f"{name}: roles {', '.join(view.roles)}; cleared for {cleared}")


@click.group()
def token() -> None:
    """API tokens for docks and scripts."""


@token.command("create")
@click.argument("name")
@click.option("--role", required=True, type=ROLES, help="The one role the token acts with.")
@click.option("--dock", help="The dock a dock token uploads for (required with --role dock).")
@click.option("--clearance", "clearances", multiple=True, type=CLASSES, help="A class it is cleared for (repeatable).")
@click.option("--expires", type=click.FloatRange(min=0, min_open=True), help="Days until it stops working.")
@json_option("One JSON object; `token` is the secret.")
def token_create(
    name: str, role: str, dock: str | None, clearances: tuple[str, ...], expires: float | None, as_json: bool
) -> None:
    """Make the token NAME and print its secret, once."""
    from pipeline.accounts.tokens import create_token
    from pipeline.catalog.types import utcnow

    expires_at = utcnow() + timedelta(days=expires) if expires else None
    with _catalog() as (settings, session):
        made = create_token(
            session,
            name=name,
            role=role,
            dock=dock,
            clearances=clearances,
            expires_at=expires_at,
            actor=settings.effective_actor,
            tool=TOOL,
        )
    until = f", until {_when(made.expires_at)}" if made.expires_at else ""
    human = (
        f"token {name} ({made.role}{until}):\n{made.token}\n  shown only now: keep it where the dock or script reads it"
    )
    emit(as_json, made.as_json(), human)


@token.command("list")
@json_option()
def token_list(as_json: bool) -> None:
    """Every token, by name (never their secrets)."""
    from pipeline.accounts.tokens import list_tokens

    with _catalog() as (_, session):
        views = list_tokens(session)
    for view in views:
        state = (
            f"revoked {_when(view.revoked_at)}"
            if view.revoked_at
            else "expired"
            if view.expired
            else f"until {_when(view.expires_at)}"
            if view.expires_at
            else "no expiry"
        )
        used = f", last used {_when(view.last_used_at)}" if view.last_used_at else ", never used"
        dock = f" dock {view.dock}" if view.dock else ""
        emit(as_json, view.as_json(), f"{view.name}  evd_{view.prefix}_…  {view.role}{dock}  {state}{used}")


@token.command("revoke")
@click.argument("name")
@json_option("One JSON object.")
def token_revoke(name: str, as_json: bool) -> None:
    """Revoke the token NAME: it stops working at once."""
    from pipeline.accounts.tokens import revoke_token

    with _catalog() as (settings, session):
        view = revoke_token(session, name=name, actor=settings.effective_actor, tool=TOOL)
    emit(as_json, view.as_json(), f"revoked token {name}")
