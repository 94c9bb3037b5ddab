"""Reading the catalog: ``items``, ``item``, ``case`` and ``overdue``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlmodel import Session, col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import (
    REQUIRED_FACTS,
    Case,
    CustodyEvent,
    Derivative,
    Item,
    ItemFact,
    ItemIssue,
    Package,
    PackageFile,
    Sighting,
    StageRun,
)
from pipeline.catalog.types import utcnow
from pipeline.cli.inputs import find_item, read_settings
from pipeline.cli.output import echo_json, emit, iso, json_option
from pipeline.custody import CustodyLog
from pipeline.runtime import open_catalog, open_store
from pipeline.settings import Settings
from pipeline.stage import TOOL


def item_json(item: Item) -> dict[str, Any]:
    """The fields of an item every listing shows."""
    return {
        "id": item.id,
        "sha256": item.sha256,
        "size": item.size,
        "original_name": item.original_name,
        "dock": item.dock_id,
        "status": item.status,
        "media_kind": item.media_kind,
        "digests": item.digests,
        "created_at": item.created_at.isoformat(),
        "fixity": item.fixity_status,
        "case_number": item.case_number,
        "captured_at": iso(item.captured_at),
        "collector": item.collector,
        "late": item.late,
        "working_days_late": item.working_days_late,
    }


def _local_day(value: str, settings: Settings, *, end: bool) -> datetime:
    """A --from/--to date (YYYY-MM-DD, local) or time (ISO 8601) as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO time") from exc
    if len(value) == 10 and end:
        moment += timedelta(days=1)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=settings.zone)
    return moment.astimezone(UTC)


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
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        query = select(Item).order_by(col(Item.created_at), col(Item.id))
        for column, value in (
            (Item.dock_id, dock),
            (Item.case_number, case_number),
            (Item.collector, officer),
            (Item.status, status),
            (Item.media_kind, media_kind),
        ):
            if value:
                query = query.where(column == value)
        if target:
            query = query.where(col(Item.case_number).in_(select(Case.number).where(Case.target == target)))
        if late:
            query = query.where(col(Item.late).is_(True))
        if missing:
            query = query.where(col(getattr(Item, missing)).is_(None))
        if issue_code:
            query = query.where(col(Item.id).in_(select(ItemIssue.item_id).where(ItemIssue.code == issue_code)))
        if from_:
            query = query.where(col(Item.captured_at) >= _local_day(from_, settings, end=False))
        if to:
            query = query.where(col(Item.captured_at) < _local_day(to, settings, end=True))
        if limit:
            query = query.limit(limit)
        for found in session.exec(query):
            emit(
                as_json,
                item_json(found),
                f"{found.id}  {found.sha256[:16]}  {found.size:>12}  {found.dock_id:<12} "
                f"{found.case_number or '-':<12} {'LATE' if found.late else '':<4} {found.original_name}",
            )


@click.command()
@click.argument("ident")
@json_option("One JSON object.")
def item(ident: str, as_json: bool) -> None:
    """Show one item (by ID or SHA-256, or a unique prefix of either) with its history.

    Looking is a retrieval: it is recorded in the custody log.
    """
    settings = read_settings()
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        found = find_item(session, ident)
        sightings = session.exec(
            select(Sighting).where(Sighting.item_id == found.id).order_by(col(Sighting.received_at))
        ).all()
        stages = session.exec(select(StageRun).where(StageRun.item_id == found.id)).all()
        with CustodyLog(session, settings.effective_actor) as log:
            log.record("viewed", f"item:{found.id}", {"via": "cli"}, tool=TOOL)
        events = session.exec(
            select(CustodyEvent).where(CustodyEvent.target == f"item:{found.id}").order_by(col(CustodyEvent.seq))
        ).all()
        data = item_json(found)
        data["sightings"] = [
            {
                "id": s.id,
                "dock": s.dock_id,
                "path": s.source_path,
                "size": s.size,
                "status": s.status,
                "received_at": s.received_at.isoformat(),
                "disposition": s.disposition,
                "disposed_path": s.disposed_path,
            }
            for s in sightings
        ]
        data["stages"] = {s.stage: s.status for s in stages}
        data.update(_facts_json(session, found))
        data["derivatives"] = [
            {
                "kind": d.kind,
                "profile": f"{d.profile}@{d.profile_version}",
                "status": d.status,
                "sha256": d.sha256,
                "size": d.size,
                "verified": d.verified,
                "progress": d.progress,
                "verification": d.verification.get("method"),
                "error": d.error,
            }
            for d in session.exec(
                select(Derivative).where(Derivative.item_id == found.id).order_by(col(Derivative.created_at))
            ).all()
        ]
        data["packages"] = [
            {"package": f.package_id, "disc": f.disc_index, "path": f.disc_path, "status": p.status}
            for f, p in session.exec(
                select(PackageFile, Package)
                .join(Package, col(Package.id) == PackageFile.package_id)
                .where(PackageFile.item_id == found.id, PackageFile.role == "original")
                .order_by(col(PackageFile.id))
            ).all()
        ]
        data["store_key"] = open_store(settings).key(found.sha256)
        data["events"] = [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "details": json.loads(e.details),
            }
            for e in events
        ]
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


def _facts_json(session: Session, item: Item) -> dict[str, Any]:
    """An item's required facts with where each came from, its case, issues and deadline."""
    facts = session.exec(select(ItemFact).where(ItemFact.item_id == item.id).order_by(col(ItemFact.id))).all()
    sources = {f.field: f.source for f in facts if f.chosen}
    case = session.get(Case, item.case_number) if item.case_number else None
    issues = session.exec(select(ItemIssue).where(ItemIssue.item_id == item.id).order_by(col(ItemIssue.id))).all()
    values = {name: getattr(item, name) for name in REQUIRED_FACTS}
    values["captured_at"] = iso(item.captured_at)
    return {
        "facts": {name: {"value": values[name], "source": sources.get(name)} for name in REQUIRED_FACTS},
        "capture_tz": item.capture_tz,
        "case": {"number": case.number, "target": case.target} if case else None,
        "issues": [{"code": i.code, "message": i.message} for i in issues],
        "received_at": iso(item.received_at),
        "deadline": iso(item.deadline),
        "deadline_provisional": item.deadline_provisional,
        "late": item.late,
        "working_days_late": item.working_days_late,
        "review_status": item.review_status,
        "classification": item.classification,
        "media": item.media,
        "candidates": [
            {"field": f.field, "value": f.value, "source": f.source, "chosen": f.chosen, "reason": f.reason}
            for f in facts
        ],
    }


@click.command("case")
@click.argument("number")
@click.option("--target", help="The person or company the enforcement concerns.")
@json_option("One JSON object.")
def case_command(number: str, target: str | None, as_json: bool) -> None:
    """Show a case, or set its enforcement target (records of one target are then found together)."""
    settings = read_settings()
    engine = open_catalog(settings)
    with session_scope(engine) as session, CustodyLog(session, settings.effective_actor) as log:
        case = session.get(Case, number)
        if target is not None:
            old = case.target if case else None
            case = case or Case(number=number)
            case.target = target.strip() or None
            case.updated_at = utcnow()
            session.add(case)
            log.record("case-updated", f"case:{number}", {"target": {"old": old, "new": case.target}}, tool=TOOL)
        elif case is None:
            raise click.ClickException(f"no case {number!r}")
        members = session.exec(select(Item).where(Item.case_number == number).order_by(col(Item.captured_at))).all()
        listed = [item_json(m) for m in members]
        data: dict[str, Any] = {"number": case.number, "target": case.target, "count": len(listed), "items": listed}
    if as_json:
        echo_json(data)
        return
    click.echo(f"case {data['number']}: target {data['target'] or '(none)'}, {data['count']} record(s)")
    for m in listed:
        click.echo(f"  {m['id']}  {m['captured_at'] or '-':<32} {m['original_name']}")


@click.command()
@json_option("One JSON object per officer and dock.")
def overdue(as_json: bool) -> None:
    """Records uploaded after their deadline, grouped by officer and dock, with working days late."""
    engine = open_catalog(read_settings())
    with session_scope(engine) as session:
        late = session.exec(
            select(Item)
            .where(col(Item.late).is_(True))
            .order_by(col(Item.collector), col(Item.dock_id), col(Item.captured_at))
        ).all()
        groups: dict[tuple[str | None, str], list[Item]] = {}
        for found in late:
            groups.setdefault((found.collector, found.dock_id), []).append(found)
        for (officer, dock), members in groups.items():
            rows: list[dict[str, Any]] = [
                {
                    "id": m.id,
                    "original_name": m.original_name,
                    "captured_at": iso(m.captured_at),
                    "deadline": iso(m.deadline),
                    "received_at": iso(m.received_at),
                    "working_days_late": m.working_days_late,
                    "provisional": m.deadline_provisional,
                }
                for m in members
            ]
            data = {
                "officer": officer,
                "dock": dock,
                "count": len(rows),
                "working_days_late": sum(m.working_days_late or 0 for m in members),
                "items": rows,
            }
            lines = [f"{officer or '(unknown officer)'} at {dock}: {len(rows)} late"]
            lines += [f"  {m['id']}  {m['working_days_late']} working day(s) late  {m['original_name']}" for m in rows]
            emit(as_json, data, "\n".join(lines))
