"""Reading the catalog: ``items``, ``item``, ``case`` and ``overdue``. The reads themselves are
``pipeline.catalog.queries``, shared with the web application; these commands parse, call and print,
as the viewer :func:`acting_viewer` names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from pipeline.catalog import queries
from pipeline.catalog.cases import SETTABLE, assign_case_member, remove_case_member, set_case_target, set_classification
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import REQUIRED_FACTS
from pipeline.catalog.people import Classification
from pipeline.cli.inputs import acting_viewer, read_settings
from pipeline.cli.output import echo_json, emit, iso, json_option
from pipeline.errors import ForbiddenError, InvalidValueError, NotFoundError, PipelineError
from pipeline.runtime import open_catalog, open_store
from pipeline.settings import Settings
from pipeline.stage import TOOL


def _local_day(value: str, settings: Settings, *, end: bool) -> datetime:
    """A --from/--to date (YYYY-MM-DD, local) or time (ISO 8601) as UTC."""
    try:
        return queries.local_day(value, settings.zone, end=end)
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.option("--dock", help="Only items first received at this dock.")
@click.option("--case", "case_number", help="Only items of this case.")
@click.option("--target", help="Only items of cases about this enforcement target.")
@click.option("--officer", help="Only items collected by this officer.")
@click.option("--late", is_flag=True, help="Only items uploaded after their deadline.")
@click.option("--missing", type=click.Choice(REQUIRED_FACTS), help="Only items lacking this required fact.")
@click.option("--issue", "issue_code", help="Only items with this open issue (e.g. damaged-media, clock-drift).")
@click.option("--from", "from_", help="Captured at or after this local date (YYYY-MM-DD) or ISO time.")
@click.option("--to", help="Captured on or before this local date (YYYY-MM-DD) or before this ISO time.")
@click.option("--status", help="Only items with this status.")
@click.option("--kind", "media_kind", type=click.Choice(["video", "audio", "image", "other"]))
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most this many (0: all).")
@json_option()
def items(
    dock: str | None,
    case_number: str | None,
    target: str | None,
    officer: str | None,
    late: bool,
    missing: str | None,
    issue_code: str | None,
    from_: str | None,
    to: str | None,
    status: str | None,
    media_kind: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List catalogued items, oldest first; filters combine."""
    settings = read_settings()
    filters = queries.ItemFilter(
        dock=dock,
        case_number=case_number,
        target=target,
        officer=officer,
        late=late,
        missing=missing,
        issue=issue_code,
        captured_from=_local_day(from_, settings, end=False) if from_ else None,
        captured_to=_local_day(to, settings, end=True) if to else None,
        status=status,
        media_kind=media_kind,
        limit=limit or None,
    )
    viewer = acting_viewer(settings)
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        for found in queries.list_items(session, viewer=viewer, filters=filters):
            name = f"(withheld: {found.classification})" if found.withheld else found.original_name
            emit(
                as_json,
                found.as_json(),
                f"{found.id}  {found.sha256[:16]}  {found.size:>12}  {found.dock:<12} "
                f"{found.case_number or '-':<12} {'LATE' if found.late else '':<4} {name}",
            )


@click.command()
@click.argument("ident")
@click.option("--purpose", help="Why you look (personal-privacy records ask for it; it is recorded).")
@json_option("One JSON object.")
def item(ident: str, purpose: str | None, as_json: bool) -> None:
    """Show one item (by ID or SHA-256, or a unique prefix of either) with its history.

    Looking is a retrieval: it is recorded in the custody log.
    """
    settings = read_settings()
    viewer = acting_viewer(settings)
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        try:
            detail = queries.item_detail(
                session,
                ident=ident,
                viewer=viewer,
                via="cli",
                store=open_store(settings),
                tool=TOOL,
                purpose=purpose,
            )
        except (NotFoundError, ForbiddenError) as exc:
            raise click.ClickException(str(exc)) from exc
    data = detail.as_json()
    if as_json:
        echo_json(data)
        return
    _show_item(data, settings)


def _show_item(data: dict[str, Any], settings: Settings) -> None:
    """One item's record for people: fields, facts with their sources, deadline, issues, history."""
    for key in (
        "id",
        "sha256",
        "size",
        "original_name",
        "media_kind",
        "dock",
        "status",
        "created_at",
        "store_key",
        "fixity",
    ):
        click.echo(f"{key:>14}: {data[key]}")
    if data["classification"] not in (Classification.NONE, Classification.UNCLASSIFIED):
        click.echo(f"{'classification':>14}: {data['classification']}")
    for name, value in data["digests"].items():
        click.echo(f"{name:>14}: {value}")
    click.echo("\nfacts:")
    zone = settings.zone
    for name, fact in data["facts"].items():
        value = fact["value"]
        if name == "captured_at" and value:
            value = f"{datetime.fromisoformat(value).astimezone(zone):%Y-%m-%d %H:%M:%S %Z} ({value})"
        click.echo(
            f"{name:>14}: {value if value is not None else '(missing)'}"
            + (f"  [{fact['source']}]" if fact["source"] else "")
        )
    deadline = data["deadline"] or "(unknown: no capture time)"
    click.echo(
        f"{'deadline':>14}: {deadline}{' (provisional)' if data['deadline_provisional'] else ''}"
        + (f"  LATE by {data['working_days_late']} working day(s)" if data["late"] else "")
    )
    click.echo("\nissues:" if data["issues"] else "\nissues: none")
    for issue in data["issues"]:
        click.echo(f"  {issue['code']:<22} {issue['message']}")
    click.echo("\nreplicas:")
    for r in data["replicas"]:
        click.echo(f"  {r['store']:<6} {r['status']:<8} verified {r['verified_at']}  {r['key']}")
    click.echo("\nsightings:")
    for s in data["sightings"]:
        click.echo(f"  {s['received_at']}  {s['dock']:<12} {s['status']:<9} {s['disposition']:<11} {s['path']}")
    if data["packages"]:
        click.echo("\npackages:")
        for p in data["packages"]:
            click.echo(f"  {p['package']}  disc {p['disc']}  {p['status']:<9} {p['path']}")
    click.echo("\ncustody:")
    for e in data["events"]:
        click.echo(f"  #{e['seq']:<6} {e['at']}  {e['actor']:<24} {e['action']}")


@click.command("case")
@click.argument("number")
@click.option("--target", help="The person or company the enforcement concerns.")
@click.option(
    "--classification",
    type=click.Choice([c.value for c in SETTABLE]),
    help="The case's class; it applies to every record of the case unless one is stricter.",
)
@click.option("--add-member", "add_member", metavar="USER", help="Assign this case handler to the case.")
@click.option("--remove-member", "remove_member", metavar="USER", help="Take this case handler off the case.")
@json_option("One JSON object.")
def case_command(
    number: str,
    target: str | None,
    classification: str | None,
    add_member: str | None,
    remove_member: str | None,
    as_json: bool,
) -> None:
    """Show a case, or set its enforcement target (records of one target are then found together),
    its class, or who handles it."""
    settings = read_settings()
    viewer = acting_viewer(settings)
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        try:
            if target is not None:
                set_case_target(session, number=number, target=target, viewer=viewer, tool=TOOL)
            if classification is not None:
                done = set_classification(
                    session, viewer=viewer, case_number=number, classification=classification, tool=TOOL
                )
                if not as_json:
                    click.echo(f"case {number}: classification {done.old!r} -> {done.new!r}", err=True)
            if add_member is not None:
                assign_case_member(session, viewer=viewer, case_number=number, user_name=add_member, tool=TOOL)
            if remove_member is not None:
                remove_case_member(session, viewer=viewer, case_number=number, user_name=remove_member, tool=TOOL)
            case = queries.case_detail(session, number=number, viewer=viewer)
        except PipelineError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        echo_json(case.as_json())
        return
    shown_class = "" if case.classification == Classification.NONE else f", {case.classification}"
    click.echo(f"case {case.number}: target {case.target or '(none)'}, {len(case.items)} record(s){shown_class}")
    for m in case.items:
        name = f"(withheld: {m.classification})" if m.withheld else m.original_name
        click.echo(f"  {m.id}  {iso(m.captured_at) or '-':<32} {name}")


@click.command()
@json_option("One JSON object per officer and dock.")
def overdue(as_json: bool) -> None:
    """Records uploaded after their deadline, grouped by officer and dock, with working days late."""
    settings = read_settings()
    viewer = acting_viewer(settings)
    with session_scope(open_catalog(settings)) as session:
        groups = queries.overdue_groups(session, viewer=viewer)
    for group in groups:
        lines = [f"{group.officer or '(unknown officer)'} at {group.dock}: {len(group.items)} late"]
        lines += [f"  {m.id}  {m.working_days_late} working day(s) late  {m.original_name}" for m in group.items]
        emit(as_json, group.as_json(), "\n".join(lines))
