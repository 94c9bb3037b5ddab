"""``evidence assign``: the facts the regulation requires, and the records' class, set by hand
(``pipeline.probe.assign`` and ``pipeline.catalog.cases.set_classification``, shared with the web
application, do the work)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from pipeline.catalog.cases import SETTABLE, set_classification
from pipeline.catalog.db import session_scope
from pipeline.cli.inputs import acting_viewer, read_settings
from pipeline.cli.output import Report, json_option
from pipeline.errors import ConflictError, ForbiddenError, InvalidValueError, NotFoundError
from pipeline.runtime import probe_context
from pipeline.stage import TOOL

ASSIGNABLE = (
    ("case_number", "--case"),
    ("proof_object", "--proof-object"),
    ("captured_place", "--place"),
    ("collector", "--collector"),
    ("captured_at", "--captured-at"),
)


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
@click.option(
    "--classification",
    type=click.Choice([c.value for c in SETTABLE]),
    help="The records' class (their case's class still applies when it is stricter).",
)
@json_option()
def assign(
    idents: Sequence[str],
    case_number: str | None,
    proof_object: str | None,
    place: str | None,
    collector: str | None,
    captured_at: str | None,
    classification: str | None,
    as_json: bool,
) -> None:
    """Set facts (or the class) by hand; they win over extracted ones. Old and new values go into the
    custody log."""
    values = {
        "case_number": case_number,
        "proof_object": proof_object,
        "captured_place": place,
        "collector": collector,
        "captured_at": captured_at,
    }
    given = {name: value.strip() for name, value in values.items() if value is not None}
    if not given and classification is None:
        raise click.UsageError("nothing to assign: give --case, --proof-object, --place, --collector or --captured-at")
    if empty := [flag for name, flag in ASSIGNABLE if name in given and not given[name]]:
        raise click.UsageError(f"{', '.join(empty)} cannot be empty")
    from pipeline.probe.assign import assign_facts, manual_capture_time

    settings = read_settings()
    if "captured_at" in given:  # refused up front, before any item is changed
        try:
            given["captured_at"] = manual_capture_time(given["captured_at"], settings.zone)
        except InvalidValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--captured-at") from exc
    probe_ctx = probe_context(settings)
    viewer = acting_viewer(settings)
    with Report(as_json) as report:
        for ident in idents:
            try:
                data: dict[str, Any] = {"item": None, "changes": {}, "issues": None}
                if given:
                    data = assign_facts(probe_ctx, ident=ident, facts=given, viewer=viewer).as_json()
                if classification is not None:
                    with session_scope(probe_ctx.engine) as session:
                        classed = set_classification(
                            session, viewer=viewer, item_id=ident, classification=classification, tool=TOOL
                        )
                    data["item"] = classed.target.removeprefix("item:")
                    data["changes"]["classification"] = {"old": classed.old, "new": classed.new}
            except (NotFoundError, ConflictError, ForbiddenError, InvalidValueError) as exc:
                report.emit({"item": None, "ident": ident, "error": str(exc)}, f"error: {exc}", failed=True)
                continue
            issues = data["issues"]
            report.emit(
                data,
                f"{data['item']}: "
                + ", ".join(f"{k} {v['old']!r} -> {v['new']!r}" for k, v in data["changes"].items())
                + ("" if issues is None else f"; open issues: {', '.join(issues)}" if issues else "; no open issues"),
            )
