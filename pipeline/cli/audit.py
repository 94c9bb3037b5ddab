"""``evidence audit``: the custody log."""

from __future__ import annotations

import click

from pipeline.catalog.db import session_scope
from pipeline.cli.inputs import read_settings
from pipeline.cli.output import Report, json_option
from pipeline.custody import check_chain
from pipeline.runtime import open_catalog


@click.group()
def audit() -> None:
    """The custody log."""


@audit.command("verify")
@json_option("One JSON object.")
def audit_verify(as_json: bool) -> None:
    """Recompute the hash chain; name the first event where it breaks."""
    engine = open_catalog(read_settings())
    with session_scope(engine) as session:
        chain = check_chain(session)
    data = {
        "ok": chain.ok,
        "events": chain.events,
        "head": chain.head,
        "broken_at": chain.broken_at,
        "reason": chain.reason,
    }
    if chain.ok:
        human = f"custody log intact: {chain.events} events, head {chain.head}"
    else:
        human = (
            f"custody log BROKEN at event {chain.broken_at}: {chain.reason} ({chain.events} events before it verified)"
        )
    with Report(as_json) as report:
        report.emit(data, human, failed=not chain.ok)
