"""``evidence access``: supervised access to secret records (``pipeline.catalog.access_requests``,
shared with the web application, does the work): ask for it, approve or deny a request, list them.
Use ``evidence --as NAME`` to act as an account."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlmodel import Session

from pipeline.catalog import queries
from pipeline.catalog.access_requests import (
    AccessRequestView,
    approve_access,
    deny_access,
    list_access_requests,
    request_access,
)
from pipeline.catalog.db import session_scope
from pipeline.catalog.people import AccessStatus
from pipeline.catalog.viewer import Viewer
from pipeline.cli.inputs import acting_viewer, read_settings
from pipeline.cli.output import emit, iso, json_option
from pipeline.errors import PipelineError
from pipeline.runtime import open_catalog
from pipeline.settings import Settings
from pipeline.stage import TOOL


@contextmanager
def _acting() -> Iterator[tuple[Session, Viewer, Settings]]:
    """A session, the acting viewer and the settings; the project's errors become the command's
    error line."""
    settings = read_settings()
    try:
        viewer = acting_viewer(settings)
        with session_scope(open_catalog(settings)) as session:
            yield session, viewer, settings
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc


def _line(request: AccessRequestView) -> str:
    window = f" until {iso(request.valid_until)}" if request.valid_until else ""
    return f"{request.id}  {request.status:<8} {request.target:<34} {request.requester}{window}  {request.purpose}"


@click.group()
def access() -> None:
    """Access to trade-secret and state-secret records: request, approve, deny, list."""


@access.command("request")
@click.option("--item", "item_id", metavar="ID", help="The record (ID or SHA-256, or a unique prefix).")
@click.option("--case", "case_number", metavar="N", help="Every record of this case.")
@click.option("--purpose", required=True, help="What the records are needed for.")
@json_option("One JSON object.")
def request_command(item_id: str | None, case_number: str | None, purpose: str, as_json: bool) -> None:
    """Ask for access to a secret record or to a case's records; an approver decides."""
    if (item_id is None) == (case_number is None):
        raise click.UsageError("give --item ID or --case N (one of them)")
    with _acting() as (session, viewer, _):
        made = request_access(
            session, viewer=viewer, item_id=item_id, case_number=case_number, purpose=purpose, tool=TOOL
        )
    emit(as_json, made.as_json(), f"requested  {_line(made)}")


@access.command("approve")
@click.argument("request_id")
@click.option("--until", required=True, help="Last local day (YYYY-MM-DD) or time (YYYY-MM-DDTHH:MM) of the grant.")
@click.option("--note", help="Why, recorded with the decision.")
@json_option("One JSON object.")
def approve_command(request_id: str, until: str, note: str | None, as_json: bool) -> None:
    """Grant a request (not your own) until a day or time at most 30 days away."""
    with _acting() as (session, viewer, settings):
        moment = queries.local_day(until, settings.zone, end=True)
        decided = approve_access(session, viewer=viewer, request_id=request_id, until=moment, note=note, tool=TOOL)
    emit(as_json, decided.as_json(), f"approved  {_line(decided)}")


@access.command("deny")
@click.argument("request_id")
@click.option("--note", help="Why, recorded with the decision.")
@json_option("One JSON object.")
def deny_command(request_id: str, note: str | None, as_json: bool) -> None:
    """Deny a request (not your own)."""
    with _acting() as (session, viewer, _):
        decided = deny_access(session, viewer=viewer, request_id=request_id, note=note, tool=TOOL)
    emit(as_json, decided.as_json(), f"denied  {_line(decided)}")


@access.command("list")
@click.option("--status", type=click.Choice([s.value for s in AccessStatus]), help="Only requests in this state.")
@json_option()
def list_command(status: str | None, as_json: bool) -> None:
    """Access requests: your own; approvers and auditors see every request for records they are cleared for."""
    with _acting() as (session, viewer, _):
        found = list_access_requests(session, viewer=viewer, status=status)
    for request in found:
        emit(as_json, request.as_json(), _line(request))
