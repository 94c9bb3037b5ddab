"""``evidence assign``: the facts the regulation requires, set by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click
from sqlalchemy import delete
from sqlmodel import col

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Case, ItemFact
from pipeline.catalog.types import utcnow
from pipeline.cli.inputs import find_item, read_settings
from pipeline.cli.output import Report, json_option
from pipeline.custody import CustodyLog
from pipeline.runtime import probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL

if TYPE_CHECKING:
    from pipeline.probe.stage import ProbeContext

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


@click.command()
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
@json_option()
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
    settings = read_settings()
    if "captured_at" in given:
        given["captured_at"] = _manual_capture_time(given["captured_at"], settings)
    probe_ctx = probe_context(settings)
    with Report(as_json) as report:
        for ident in idents:
            try:
                _assign_one(report, probe_ctx, settings, ident, given)
            except click.ClickException as exc:
                report.emit({"item": None, "ident": ident, "error": exc.message}, f"error: {exc.message}", failed=True)


def _assign_one(report: Report, probe_ctx: ProbeContext, settings: Settings, ident: str, given: dict[str, str]) -> None:
    """Set the given facts on one item in one transaction, reassess it and report the changes."""
    from pipeline.probe.stage import assess

    actor = settings.effective_actor
    with session_scope(probe_ctx.engine) as session, CustodyLog(session, actor) as log:
        found = find_item(session, ident)
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
        report.emit(
            {"item": found.id, "changes": changes, "issues": codes},
            f"{found.id}: "
            + ", ".join(f"{k} {v['old']!r} -> {v['new']!r}" for k, v in changes.items())
            + (f"; open issues: {', '.join(codes)}" if codes else "; no open issues"),
        )
