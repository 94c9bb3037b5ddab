"""The ``evidence`` command. The only module that prints.

Every reporting command takes ``--json`` (one JSON object per line on stdout) and exits non-zero
when any input failed. People get a progress bar on stderr and a summary line.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, or_, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import (
    Case,
    CustodyEvent,
    Derivative,
    Item,
    ItemFact,
    ItemIssue,
    Package,
    PackageDisc,
    PackageFile,
    Sighting,
    StageRun,
)
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog, check_chain
from pipeline.errors import NotFoundError, PipelineError, TransientError, describe
from pipeline.ingest.batch import ingest_arrivals
from pipeline.ingest.intake import TOOL, Arrival, IntakeContext, IntakeResult, mark_queued, open_sightings
from pipeline.ingest.scan import Skipped, arrival_for, walk
from pipeline.package.media import MEDIA_NAMES, parse_size
from pipeline.probe.choose import REQUIRED
from pipeline.runtime import (
    derive_context,
    intake_context,
    open_catalog,
    open_store,
    package_context,
    probe_context,
    process_name,
)
from pipeline.settings import Settings, load_settings
from pipeline.stage.names import readable

BATCH = 500


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc


def _emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
    else:
        click.echo(human)


def _progress(total: int, as_json: bool, label: str) -> Any:
    show = not as_json and sys.stderr.isatty() and total > 1
    return click.progressbar(length=total, label=label, file=sys.stderr if show else open(os.devnull, "w"))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evidence-pipeline")
def main() -> None:
    """Evidence media pipeline: verified intake, catalog and custody log."""
    logging.basicConfig(
        level=os.environ.get("EVIDENCE_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# ---------------------------------------------------------------------------------------------- ingest
@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--dock", help="Dock to record the files under (default: the inbox folder, or 'manual').")
@click.option(
    "--source-policy",
    type=click.Choice(["move", "delete", "keep"]),
    help="What to do with each source once stored (default: the dock policy inside the inbox, "
    "'keep' for files from elsewhere).",
)
@click.option("--enqueue", is_flag=True, help="Hand the files to the workers instead of taking them in here.")
@click.option(
    "--probe/--no-probe",
    "with_probe",
    default=True,
    show_default=True,
    help="Read metadata right away; with --no-probe it waits for `evidence probe` or the workers.",
)
@click.option(
    "--derive/--no-derive",
    "with_derive",
    default=True,
    show_default=True,
    help="Make access copies and thumbnails right away (after probing); else `evidence derive` or the workers do.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def ingest(
    paths: Sequence[str],
    dock: str | None,
    source_policy: str | None,
    enqueue: bool,
    with_probe: bool,
    with_derive: bool,
    as_json: bool,
) -> None:
    """Take in files or folders: copy, hash, verify, catalogue, then dispose of the sources; then
    read their metadata and make their verified access copies."""
    settings = _settings()
    ctx = intake_context(settings)
    arrivals, early = _collect(paths, settings, dock, source_policy)
    statuses: Counter[str] = Counter()
    for result in early:
        statuses[result.status] += 1
        _emit_result(as_json, result)
    outcomes: Iterable[list[IntakeResult]]
    if enqueue:
        from workers.app import app, configure

        configure(app, settings)
        outcomes = (_enqueue_batch(ctx, arrivals[i : i + BATCH]) for i in range(0, len(arrivals), BATCH))
    else:
        outcomes = ingest_arrivals(settings, ctx, arrivals, batch=BATCH, with_probe=with_probe, with_derive=with_derive)
    reported = 0
    with _progress(len(arrivals), as_json, "ingesting") as bar:
        try:
            for results in outcomes:
                for result in results:
                    statuses[result.status] += 1
                    _emit_result(as_json, result)
                reported += len(results)
                bar.update(len(results))
        except Exception as exc:  # e.g. the broker refused the queueing: the rest get their line
            if not isinstance(exc, PipelineError):
                logging.getLogger("evidence.ingest").exception("ingest stopped")
            for arrival in arrivals[reported:]:
                statuses["failed"] += 1
                _emit_result(
                    as_json,
                    IntakeResult(
                        None, readable(arrival.path), arrival.dock, "failed", error=f"{describe(exc)}; left where it is"
                    ),
                )
    if not as_json:
        click.echo(", ".join(f"{n} {status}" for status, n in sorted(statuses.items())) or "nothing to do", err=True)
    if statuses["failed"]:
        sys.exit(1)


def _collect(
    paths: Sequence[str], settings: Settings, dock: str | None, policy: str | None
) -> tuple[list[Any], list[IntakeResult]]:
    arrivals = []
    early: list[IntakeResult] = []
    for given in paths:
        raw = os.fsencode(given)
        if not os.path.lexists(raw):
            early.append(
                IntakeResult(None, os.path.abspath(given), dock or "", "failed", error="no such file or directory")
            )
            continue
        for entry in walk(raw, settings.ignore_patterns):
            if isinstance(entry, Skipped):
                early.append(
                    IntakeResult(None, readable(os.path.abspath(entry.path)), dock or "", "ignored", error=entry.reason)
                )
                continue
            arrivals.append(
                arrival_for(
                    entry,
                    inbox=settings.inbox_dir,
                    dock=dock,
                    policy=policy or settings.source_policy,
                    external_policy=policy or settings.external_source_policy,
                )
            )
    return arrivals, early


def _enqueue_batch(ctx: IntakeContext, batch: list[Arrival]) -> list[IntakeResult]:
    from workers.tasks import enqueue_intake

    opened = open_sightings(ctx, batch)
    ids = [s.id for s in opened if s is not None]
    note = None
    if ids:
        try:
            enqueue_intake(ids)
        except TransientError as exc:  # the sightings are in the catalog: the reconciler queues them
            note = f"{exc}; recorded, and queued by the reconciler once the broker is back"
        else:
            mark_queued(ctx.engine, ids)
    return [
        IntakeResult(s.id, s.path, s.dock, "queued", size=s.size, error=note)
        if s is not None
        else IntakeResult(
            None, readable(a.path), a.dock, "ignored", error="already being taken in (an open sighting holds this path)"
        )
        for a, s in zip(batch, opened, strict=True)
    ]


def _emit_result(as_json: bool, result: IntakeResult) -> None:
    detail = result.sha256[:16] if result.sha256 else (result.error or "")
    _emit(
        as_json,
        result.as_json(),
        f"{result.status:<9} {detail:<16} {result.path}"
        + (f"  ({result.error})" if result.error and result.sha256 else ""),
    )


# ----------------------------------------------------------------------------------------------- items
def _item_json(item: Item) -> dict[str, Any]:
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
        "captured_at": _iso(item.captured_at),
        "collector": item.collector,
        "late": item.late,
        "working_days_late": item.working_days_late,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _find_item(session: Session, ident: str) -> Item:
    """An item by ID or SHA-256, or a unique prefix (6 characters or more) of either."""
    matches = (
        session.exec(
            select(Item)
            .where(or_(col(Item.id).startswith(ident.upper()), col(Item.sha256).startswith(ident.lower())))
            .limit(2)
        ).all()
        if len(ident) >= 6
        else []
    )
    if len(matches) != 1:
        reason = "no item matches" if not matches else "more than one item matches"
        raise click.ClickException(f"{reason} {ident!r}")
    return matches[0]


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


@main.command()
@click.option("--dock", help="Only items first received at this dock.")
@click.option("--case", "case_number", help="Only items of this case.")
@click.option("--target", help="Only items of cases about this enforcement target.")
@click.option("--officer", help="Only items collected by this officer.")
@click.option("--late", is_flag=True, help="Only items uploaded after their deadline.")
@click.option("--missing", type=click.Choice(REQUIRED), help="Only items lacking this required fact.")
@click.option("--issue", "issue_code", help="Only items with this open issue (e.g. damaged-media, clock-drift).")
@click.option("--from", "from_", help="Captured at or after this local date (YYYY-MM-DD) or ISO time.")
@click.option("--to", help="Captured on or before this local date (YYYY-MM-DD) or before this ISO time.")
@click.option("--status", help="Only items with this status.")
@click.option("--kind", "media_kind", type=click.Choice(["video", "audio", "image", "other"]))
@click.option("--limit", type=click.IntRange(min=0), default=0, help="At most this many (0: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
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
    settings = _settings()
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
            _emit(
                as_json,
                _item_json(found),
                f"{found.id}  {found.sha256[:16]}  {found.size:>12}  {found.dock_id:<12} "
                f"{found.case_number or '-':<12} {'LATE' if found.late else '':<4} {found.original_name}",
            )


@main.command()
@click.argument("ident")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def item(ident: str, as_json: bool) -> None:
    """Show one item (by ID or SHA-256, or a unique prefix of either) with its history.

    Looking is a retrieval: it is recorded in the custody log.
    """
    settings = _settings()
    engine = open_catalog(settings)
    with session_scope(engine) as session:
        found = _find_item(session, ident)
        sightings = session.exec(
            select(Sighting).where(Sighting.item_id == found.id).order_by(col(Sighting.received_at))
        ).all()
        stages = session.exec(select(StageRun).where(StageRun.item_id == found.id)).all()
        with CustodyLog(session, settings.effective_actor) as log:
            log.record("viewed", f"item:{found.id}", {"via": "cli"}, tool=TOOL)
        events = session.exec(
            select(CustodyEvent).where(CustodyEvent.target == f"item:{found.id}").order_by(col(CustodyEvent.seq))
        ).all()
        data = _item_json(found)
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
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
        return
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
    facts = session.exec(select(ItemFact).where(ItemFact.item_id == item.id).order_by(col(ItemFact.id))).all()
    sources = {f.field: f.source for f in facts if f.chosen}
    case = session.get(Case, item.case_number) if item.case_number else None
    issues = session.exec(select(ItemIssue).where(ItemIssue.item_id == item.id).order_by(col(ItemIssue.id))).all()
    values = {name: getattr(item, name) for name in REQUIRED}
    values["captured_at"] = _iso(item.captured_at)
    return {
        "facts": {name: {"value": values[name], "source": sources.get(name)} for name in REQUIRED},
        "capture_tz": item.capture_tz,
        "case": {"number": case.number, "target": case.target} if case else None,
        "issues": [{"code": i.code, "message": i.message} for i in issues],
        "received_at": _iso(item.received_at),
        "deadline": _iso(item.deadline),
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


# ---------------------------------------------------------------------------------------------- assign
ASSIGNABLE = (
    ("case_number", "--case"),
    ("proof_object", "--proof-object"),
    ("captured_place", "--place"),
    ("collector", "--collector"),
    ("captured_at", "--captured-at"),
)


def _manual_capture_time(value: str, settings: Settings) -> str:
    """A --captured-at value as ISO 8601 with its offset (a time without one is the site's local
    time), refused when it cannot be read or lies in the future."""
    from pipeline.probe.choose import parse_time

    moment = parse_time(value.strip(), settings.zone)
    if moment is None:
        raise click.BadParameter(
            f"{value!r} is not a time: give ISO 8601, e.g. 2026-11-20T14:30 (site time) or 2026-11-20T06:30Z",
            param_hint="--captured-at",
        )
    if moment > utcnow():
        raise click.BadParameter(f"{value!r} lies in the future", param_hint="--captured-at")
    return moment.astimezone(settings.zone).isoformat()


@main.command()
@click.argument("idents", nargs=-1, required=True)
@click.option("--case", "case_number", help="Case number the records belong to.")
@click.option("--proof-object", help="What the records are meant to prove.")
@click.option("--place", help="Where they were captured.")
@click.option("--collector", help="The officer who collected them.")
@click.option(
    "--captured-at",
    "captured_at",
    help="When they were captured, ISO 8601 (without an offset: site time); the deadline follows.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def assign(
    idents: Sequence[str],
    case_number: str | None,
    proof_object: str | None,
    place: str | None,
    collector: str | None,
    captured_at: str | None,
    as_json: bool,
) -> None:
    """Set facts by hand; they win over extracted ones. Old and new values go into the custody log."""
    from pipeline.probe.stage import assess

    values = {
        "case_number": case_number,
        "proof_object": proof_object,
        "captured_place": place,
        "collector": collector,
        "captured_at": captured_at,
    }
    given = {name: value.strip() for name, value in values.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to assign: give --case, --proof-object, --place, --collector or --captured-at")
    if empty := [flag for name, flag in ASSIGNABLE if name in given and not given[name]]:
        raise click.UsageError(f"{', '.join(empty)} cannot be empty")
    settings = _settings()
    if "captured_at" in given:
        given["captured_at"] = _manual_capture_time(given["captured_at"], settings)
    probe_ctx = probe_context(settings)
    actor = settings.effective_actor
    failed = 0
    for ident in idents:
        try:
            with session_scope(probe_ctx.engine) as session, CustodyLog(session, actor) as log:
                found = _find_item(session, ident)
                if "captured_at" in given and found.received_at is not None:
                    captured = datetime.fromisoformat(given["captured_at"])
                    if captured > found.received_at + timedelta(seconds=probe_ctx.drift_tolerance):
                        raise click.ClickException(
                            f"{found.id}: capture time {given['captured_at']} is after the record arrived "
                            f"({found.received_at.astimezone(settings.zone).isoformat()})"
                        )
                if "case_number" in given and session.get(Case, given["case_number"]) is None:
                    session.add(Case(number=given["case_number"]))
                    log.record("case-opened", f"case:{given['case_number']}", {"via": "assign"}, tool=TOOL)
                changes = {}
                for name, value in given.items():
                    old = getattr(found, name)
                    changes[name] = {"old": old.isoformat() if isinstance(old, datetime) else old, "new": value}
                    session.execute(
                        delete(ItemFact).where(
                            col(ItemFact.item_id) == found.id,
                            col(ItemFact.field) == name,
                            col(ItemFact.source).like("manual:%"),
                        )
                    )
                    session.add(ItemFact(item_id=found.id, field=name, value=value, source=f"manual:{actor}"))
                session.flush()
                assessment = assess(session, probe_ctx, found)
                log.record("assigned", f"item:{found.id}", {"changes": changes}, tool=TOOL)
                codes = [code for code, _ in assessment.issues]
                _emit(
                    as_json,
                    {"item": found.id, "changes": changes, "issues": codes},
                    f"{found.id}: "
                    + ", ".join(f"{k} {v['old']!r} -> {v['new']!r}" for k, v in changes.items())
                    + (f"; open issues: {', '.join(codes)}" if codes else "; no open issues"),
                )
        except click.ClickException as exc:
            failed += 1
            _emit(as_json, {"item": None, "ident": ident, "error": exc.message}, f"error: {exc.message}")
    if failed:
        sys.exit(1)


@main.command("case")
@click.argument("number")
@click.option("--target", help="The person or company the enforcement concerns.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def case_command(number: str, target: str | None, as_json: bool) -> None:
    """Show a case, or set its enforcement target (records of one target are then found together)."""
    settings = _settings()
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
        listed = [_item_json(m) for m in members]
        data: dict[str, Any] = {"number": case.number, "target": case.target, "count": len(listed), "items": listed}
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, default=str))
        return
    click.echo(f"case {data['number']}: target {data['target'] or '(none)'}, {data['count']} record(s)")
    for m in listed:
        click.echo(f"  {m['id']}  {m['captured_at'] or '-':<32} {m['original_name']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per officer and dock.")
def overdue(as_json: bool) -> None:
    """Records uploaded after their deadline, grouped by officer and dock, with working days late."""
    engine = open_catalog(_settings())
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
                    "captured_at": _iso(m.captured_at),
                    "deadline": _iso(m.deadline),
                    "received_at": _iso(m.received_at),
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
            _emit(as_json, data, "\n".join(lines))


def _stage_ids(
    session: Session, stage: str, idents: Sequence[str], pending: bool, retry_failed: bool
) -> tuple[list[str], list[tuple[str, str]]]:
    """The item IDs a stage command works on, and each given ID that names no item, with why."""
    if bool(idents) == (pending or retry_failed):
        raise click.UsageError("give item IDs, or --pending and/or --retry-failed (not both)")
    if not idents:
        statuses = [status for status, wanted in (("pending", pending), ("failed", retry_failed)) if wanted]
        query = select(StageRun.item_id).where(StageRun.stage == stage, col(StageRun.status).in_(statuses))
        return list(session.exec(query.order_by(col(StageRun.item_id))).all()), []
    ids: list[str] = []
    unknown: list[tuple[str, str]] = []
    for ident in idents:
        try:
            ids.append(_find_item(session, ident).id)
        except click.ClickException as exc:
            unknown.append((ident, exc.message))
    return list(dict.fromkeys(ids)), unknown


@main.command("probe")
@click.argument("idents", nargs=-1)
@click.option("--pending", is_flag=True, help="Every item whose probe stage is still to do.")
@click.option("--retry-failed", is_flag=True, help="Every item whose probe stage failed (after its cause is fixed).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def probe_command(idents: Sequence[str], pending: bool, retry_failed: bool, as_json: bool) -> None:
    """Read metadata again (or for the first time) for the given items: facts, issues, deadline."""
    from pipeline.probe.stage import probe

    settings = _settings()
    probe_ctx = probe_context(settings)
    with session_scope(probe_ctx.engine) as session:
        ids, unknown = _stage_ids(session, "probe", idents, pending, retry_failed)
    failed = len(unknown)
    for ident, reason in unknown:
        _emit(as_json, {"item": ident, "status": "missing", "issues": [], "error": reason}, f"missing {reason}")
    with _progress(len(ids), as_json, "probing") as bar:
        for start in range(0, len(ids), BATCH):
            for result in probe(probe_ctx, ids[start : start + BATCH]):
                failed += result.status != "probed"
                _emit(
                    as_json,
                    {
                        "item": result.item,
                        "status": result.status,
                        "issues": list(result.issues),
                        **({"error": result.error} if result.error else {}),
                    },
                    f"{result.status:<7} {result.item}  "
                    + (result.error if result.error else ", ".join(result.issues) or "no issues"),
                )
            bar.update(min(BATCH, len(ids) - start))
    if failed:
        sys.exit(1)


@main.command("derive")
@click.argument("idents", nargs=-1)
@click.option("--pending", is_flag=True, help="Every item whose derivatives are still to make.")
@click.option("--retry-failed", is_flag=True, help="Every item whose derive stage failed (after its cause is fixed).")
@click.option("--profile", "profiles", multiple=True, help="Only this profile (repeatable).")
@click.option("--force", is_flag=True, help="Make them again even where a verified one exists.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per derivative.")
def derive_command(
    idents: Sequence[str], pending: bool, retry_failed: bool, profiles: Sequence[str], force: bool, as_json: bool
) -> None:
    """Make (or remake) access copies, thumbnails and masters, each verified and stored."""
    from pipeline.transcode.stage import DeriveResult, derive

    settings = _settings()
    derive_ctx = derive_context(settings)
    if unknown_profiles := sorted(set(profiles) - set(derive_ctx.config.profiles)):
        raise click.BadParameter(
            f"unknown profile(s) {', '.join(unknown_profiles)}; known: {', '.join(derive_ctx.config.profiles)}",
            param_hint="--profile",
        )
    with session_scope(derive_ctx.engine) as session:
        ids, unknown = _stage_ids(session, "derive", idents, pending, retry_failed)
    failed = 0

    def report(result: DeriveResult) -> None:
        nonlocal failed
        failed += result.status in ("failed", "missing")
        _emit(
            as_json,
            result.as_json(),
            f"{result.status:<8} {result.item}  {result.profile:<24} {result.error or result.sha256 or ''}",
        )

    for ident, reason in unknown:
        report(DeriveResult(ident, "", "", "missing", error=reason))
    with _progress(len(ids), as_json, "deriving") as bar:
        for item_id in ids:
            for result in derive(derive_ctx, [item_id], only=profiles, force=force):
                report(result)
            bar.update(1)
    if failed:
        sys.exit(1)


# -------------------------------------------------------------------------------------------- packages
@main.command("package")
@click.argument("args", nargs=-1, required=True, metavar="CASE [ID]...")
@click.option(
    "--items",
    "only_items",
    is_flag=True,
    help="Package only the item IDs given after CASE (`package CASE --items ID ID`; commas work too).",
)
@click.option("--media", type=click.Choice(MEDIA_NAMES), help="Disc type (default: setting package_media).")
@click.option("--capacity", help="Bytes per disc instead of the medium's, e.g. 700MB (odd media, trials).")
@click.option("--with-access-copies", is_flag=True, help="Put each item's verified access copies beside it.")
@click.option("--producer", help="Who produces the discs, as the description names them (default: you).")
@click.option("--purpose", help="What the discs are for, recorded with the request.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Where the images go.")
@click.option("--enqueue", is_flag=True, help="Record the request and let a worker build it.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object for the package.")
def package_command(
    args: Sequence[str],
    only_items: bool,
    media: str | None,
    capacity: str | None,
    with_access_copies: bool,
    producer: str | None,
    purpose: str | None,
    out_dir: Path | None,
    enqueue: bool,
    as_json: bool,
) -> None:
    """Make disc-ready ISO images of a case's items, with description, manifests and BagIt, and read
    every image back to check it."""
    from pipeline.package.stage import build_package, request_package

    case_number, *rest = args
    if rest and not only_items:
        raise click.UsageError(f"unexpected argument(s) {' '.join(rest)}; name items with --items ID...")
    item_ids = [part for value in rest for part in value.split(",") if part]
    if only_items and not item_ids:
        raise click.UsageError("--items needs at least one item ID after the case number")
    settings = _settings()
    package_ctx = package_context(settings)
    try:
        with session_scope(package_ctx.engine) as session:
            found, unknown = [], []
            for ident in item_ids:
                try:
                    found.append(_find_item(session, ident).id)
                except click.ClickException as exc:
                    unknown.append(exc.message)
        if unknown:
            raise NotFoundError("; ".join(unknown))
        item_ids = found
        package_id = request_package(
            package_ctx,
            case_number=case_number,
            item_ids=item_ids,
            media=media or settings.package_media,
            capacity=parse_size(capacity) if capacity else None,
            with_access_copies=with_access_copies,
            producer=producer,
            out_dir=out_dir,
            purpose=purpose,
        )
    except PipelineError as exc:
        _emit(
            as_json, {"package": None, "case": case_number, "status": "refused", "error": str(exc)}, f"refused: {exc}"
        )
        sys.exit(1)
    incomplete = _incomplete_items(package_ctx.engine, package_id)
    if incomplete and not as_json:
        click.echo(
            f"warning: {len(incomplete)} item(s) lack facts the regulation requires; their description says "
            "'not recorded' (set them with `evidence assign`):",
            err=True,
        )
        for entry in incomplete:
            click.echo(f"  {entry['item']}  {', '.join(entry['missing'])}", err=True)
    if enqueue:
        from workers.app import app, configure
        from workers.tasks import enqueue_package

        configure(app, settings)
        enqueue_package([package_id])
        _emit(
            as_json,
            {"package": package_id, "case": case_number, "status": "queued", "incomplete": incomplete},
            f"queued  {package_id}",
        )
        return
    with _progress(100, as_json, "packaging") as bar:
        shown = {"percent": 0}

        def progress(what: str, done: int, total: int) -> None:
            percent = (done * 50 // max(total, 1)) + (50 if what == "verify" else 0)
            if percent > shown["percent"]:
                bar.update(percent - shown["percent"])
                shown["percent"] = percent

        result = build_package(package_ctx, package_id, progress=progress, stale_after=settings.stale_after)
    lines = [f"{result.status:<8} package {result.package} of case {result.case_number}: {result.items} item(s)"]
    for disc in result.discs:
        state = "verified" if disc.verified else "NOT verified"
        lines.append(f"  disc {disc.index}: {disc.path}  {disc.size:,} bytes  sha256 {disc.sha256}  {state}")
    if result.error:
        lines.append(f"  error: {result.error}")
    _emit(as_json, {**result.as_json(), "incomplete": incomplete}, "\n".join(lines))
    if result.status != "verified":
        sys.exit(1)


def _incomplete_items(engine: Engine, package_id: str) -> list[dict[str, Any]]:
    """The items of a package that lack any of the facts the regulation requires, with which."""
    with session_scope(engine) as session:
        package = session.get(Package, package_id)
        assert package is not None
        items = session.exec(select(Item).where(col(Item.id).in_(package.item_ids)).order_by(col(Item.id))).all()
        return [
            {"item": item.id, "missing": missing}
            for item in items
            if (missing := [field for field in REQUIRED if getattr(item, field) in (None, "")])
        ]


@main.command("packages")
@click.option("--case", "case_number", help="Only packages of this case.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per package.")
def packages_command(case_number: str | None, as_json: bool) -> None:
    """List disc packages: who asked, when, for what, and each disc's image, hash and verification."""
    engine = open_catalog(_settings())
    with session_scope(engine) as session:
        query = select(Package).order_by(col(Package.requested_at))
        if case_number:
            query = query.where(Package.case_number == case_number)
        for found in session.exec(query).all():
            discs = session.exec(
                select(PackageDisc).where(PackageDisc.package_id == found.id).order_by(col(PackageDisc.disc_index))
            ).all()
            data = {
                "package": found.id,
                "case": found.case_number,
                "status": found.status,
                "requested_by": found.requested_by,
                "requested_at": _iso(found.requested_at),
                "purpose": found.purpose,
                "producer": found.producer,
                "produced_at": _iso(found.produced_at),
                "media": found.media,
                "items": found.item_ids,
                "with_access_copies": found.with_access_copies,
                "error": found.error,
                "discs": [
                    {
                        "index": disc.disc_index,
                        "label": disc.label,
                        "path": disc.path,
                        "size": disc.size,
                        "sha256": disc.sha256,
                        "verified": disc.verified,
                        "verified_at": _iso(disc.verified_at),
                    }
                    for disc in discs
                ],
            }
            lines = [
                f"{found.id}  {found.status:<9} case {found.case_number}  {len(found.item_ids)} item(s) on "
                f"{found.media}, asked by {found.requested_by} at {_iso(found.requested_at)}"
                + (f" for {found.purpose}" if found.purpose else "")
            ]
            lines += [f"  disc {d.disc_index}: {d.path}  sha256 {d.sha256}" for d in discs]
            if found.error:
                lines.append(f"  error: {found.error}")
            _emit(as_json, data, "\n".join(lines))


@main.command("verify-package")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-catalog", is_flag=True, help="Check only against the disc's own manifest.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image or folder.")
def verify_package_command(paths: Sequence[Path], no_catalog: bool, as_json: bool) -> None:
    """Check disc images (.iso) or mounted or copied disc folders against their manifest and the
    catalog; name every missing, extra or altered file."""
    from pipeline.package.verify import verify_package

    settings = _settings()
    engine = None if no_catalog else _catalog_if_present(settings)
    failed = 0
    for path in paths:
        try:
            check = verify_package(path, engine=engine, actor=settings.effective_actor)
        except Exception as exc:  # this disc fails with the reason; the next one is still checked
            if not isinstance(exc, PipelineError):
                logging.getLogger("evidence.verify").exception("checking %s failed", path)
            failed += 1
            _emit(as_json, {"path": str(path), "ok": False, "error": describe(exc)}, f"FAILED  {path}: {describe(exc)}")
            continue
        failed += not check.ok
        lines = [
            f"{'ok' if check.ok else 'FAILED':<7} {path}: {check.files} files"
            + (f", package {check.package} disc {check.disc}" if check.package else "")
            + (", checked against the catalog" if check.catalog else "")
        ]
        lines += [f"  missing: {name}" for name in check.missing]
        lines += [f"  extra:   {name}" for name in check.extra]
        lines += [f"  altered: {name}" for name in check.altered]
        lines += [f"  problem: {problem}" for problem in check.problems]
        _emit(as_json, check.as_json(), "\n".join(lines))
    if failed:
        sys.exit(1)


def _catalog_if_present(settings: Settings) -> Any:
    """The catalog, when this machine has one (a disc can be checked anywhere, catalog or not)."""
    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    return open_catalog(settings)


# ----------------------------------------------------------------------------------------------- audit
@main.group()
def audit() -> None:
    """The custody log."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; name the first event where it breaks."""
    engine = open_catalog(_settings())
    with session_scope(engine) as session:
        report = check_chain(session)
    data = {
        "ok": report.ok,
        "events": report.events,
        "head": report.head,
        "broken_at": report.broken_at,
        "reason": report.reason,
    }
    if report.ok:
        _emit(as_json, data, f"custody log intact: {report.events} events, head {report.head}")
        return
    _emit(
        as_json,
        data,
        f"custody log BROKEN at event {report.broken_at}: {report.reason} ({report.events} events before it verified)",
    )
    sys.exit(1)


# ---------------------------------------------------------------------------------------------- fixity
@main.command()
@click.argument("ids", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def fixity(ids: Sequence[str], as_json: bool) -> None:
    """Re-hash every stored object (or the given items) and name each that no longer matches."""
    from pipeline.fixity import run_fixity

    settings = _settings()
    engine = open_catalog(settings)
    outcomes: Counter[str] = Counter()
    with session_scope(engine) as session:
        items: list[str] = []
        for ident in ids:
            try:
                items.append(_find_item(session, ident).id)
            except click.ClickException as exc:
                outcomes["unknown"] += 1
                _emit(as_json, {"item": ident, "status": "unknown", "error": exc.message}, f"UNKNOWN: {exc.message}")
        total = len(items) if ids else len(session.exec(select(Item.id)).all())
    with _progress(total, as_json, "checking") as bar:
        checks = run_fixity(engine, open_store(settings), actor=settings.effective_actor, items=items) if total else []
        for result in checks:
            outcomes[result.outcome] += 1
            bar.update(1)
            if as_json or not result.ok or ids:
                _emit(
                    as_json,
                    result.as_json(),
                    f"{result.outcome.upper()}: item {result.item} {result.key}"
                    + (f": {result.error}" if result.error else ""),
                )
    if not as_json:
        click.echo(
            f"{outcomes['ok']} ok, {outcomes['mismatch']} altered, {outcomes['missing']} missing"
            + (f", {outcomes['error']} could not be checked" if outcomes["error"] else ""),
            err=True,
        )
    if outcomes["mismatch"] or outcomes["missing"] or outcomes["error"] or outcomes["unknown"]:
        sys.exit(1)


# --------------------------------------------------------------------------------------------- running
@main.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: setting).")
@click.option(
    "--queues",
    default="intake,probe,transcode,package,maintenance",
    show_default=True,
    help="Stages to work on, comma-separated (run slow stages on workers of their own).",
)
@click.option("--beat", is_flag=True, help="Also schedule the periodic reconciler (one per cluster).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, queues: str, beat: bool, loglevel: str) -> None:
    """Run a Celery worker on the given stage queues."""
    settings = _settings()
    settings.ensure_dirs()
    open_catalog(settings)
    from workers.app import STAGES, app, configure, queue_name

    stages = [stage.strip() for stage in queues.split(",") if stage.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        raise click.BadParameter(
            f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}", param_hint="--queues"
        )
    configure(app, settings)
    argv = [
        "worker",
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        "--queues",
        ",".join(queue_name(settings, stage) for stage in stages),
        "--hostname",
        f"evidence-{'-'.join(stages)}-{os.getpid()}@%h",
    ]
    if beat:
        argv += ["--beat", "--schedule", str(settings.home_dir / "beat-schedule")]
    app.worker_main(argv)


def _run_watcher(settings: Settings, stop: threading.Event, with_reconciler: bool) -> None:
    from pipeline.ingest.watcher import Watcher
    from workers.app import app, configure
    from workers.tasks import enqueue_intake, reconcile_all

    configure(app, settings)
    ctx = intake_context(settings, actor=process_name("watcher"))
    watcher = Watcher(
        ctx,
        enqueue_intake,
        quiet_period=settings.quiet_period,
        rescan_interval=settings.rescan_interval,
        ignore_patterns=settings.ignore_patterns,
        source_policy=settings.source_policy,
        polling=settings.watch_polling,
        poll_interval=settings.poll_interval,
    )

    def reconcile_loop() -> None:
        while not stop.is_set():
            try:
                reconcile_all(ctx, settings)
            except TransientError as exc:  # the broker or the catalog is away: the next pass tries again
                logging.getLogger("evidence.reconcile").warning("reconcile pass skipped: %s", exc)
            except Exception:
                logging.getLogger("evidence.reconcile").exception("reconcile pass failed; retrying later")
            stop.wait(settings.reconcile_interval)

    if with_reconciler:
        threading.Thread(target=reconcile_loop, name="reconciler", daemon=True).start()
    watcher.run(stop)


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


@main.command()
@click.option(
    "--reconcile/--no-reconcile",
    default=True,
    show_default=True,
    help="Also run the reconciler in this process.",
)
def watch(reconcile: bool) -> None:
    """Watch inbox/<dock>/ folders and hand complete files to the workers."""
    settings = _settings()
    settings.ensure_dirs()
    stop = threading.Event()
    _stop_on_signals(stop)
    click.echo(f"watching {settings.inbox_dir}", err=True)
    _run_watcher(settings, stop, with_reconciler=reconcile)


@main.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: setting).")
def serve(concurrency: int | None) -> None:
    """Everything in one command: watcher, reconciler and workers (embedded default: no servers)."""
    settings = _settings()
    settings.ensure_dirs()
    open_catalog(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    base = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "WARNING"]
    # Intake has workers of its own, so slow probing or a batch of fixity checks never holds up files
    # waiting on the docks. Same process group: a signal to `serve` from a terminal or a supervisor
    # reaches the workers too.
    workers = [
        subprocess.Popen(
            [*base, "--queues", "intake", "--concurrency", str(concurrency or settings.worker_concurrency)]
        ),
        subprocess.Popen([*base, "--queues", "probe", "--concurrency", "1"]),
        subprocess.Popen(
            [
                *base,
                "--queues",
                "transcode,package,maintenance",
                "--concurrency",
                str(settings.transcode_concurrency),
            ]
        ),
    ]
    click.echo(
        f"serving: inbox {settings.inbox_dir}, catalog {settings.effective_database_url}, "
        f"broker {settings.broker_url or 'embedded file queue'}",
        err=True,
    )
    try:
        _run_watcher(settings, stop, with_reconciler=True)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run() -> None:
    try:
        main(standalone_mode=True)
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
