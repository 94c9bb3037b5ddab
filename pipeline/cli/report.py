"""``evidence report``: the statistics and supervision report of a period, as a table for people,
one JSON object, CSV (one row per group), a standalone HTML document or a PDF. The figures are
``pipeline.reports``', shared with the web application; showing them is recorded in the custody
log as the viewer :func:`acting_viewer` names."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from pipeline.cli.inputs import acting_viewer, read_settings
from pipeline.errors import InvalidValueError, PipelineError
from pipeline.stage import TOOL

FORMATS = ("table", "json", "csv", "html", "pdf")
GROUPINGS = ("officer", "dock", "case", "target", "month")


def _day(value: str | None, name: str) -> date | None:
    from pipeline.reports import typed_day

    if value is None:
        return None
    try:
        return typed_day(value, name)
    except InvalidValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.command()
@click.option("--from", "from_", metavar="DAY", help="First day received (YYYY-MM-DD, local), included.")
@click.option("--to", metavar="DAY", help="Last day received (YYYY-MM-DD, local), included.")
@click.option("--by", type=click.Choice(GROUPINGS), default="officer", show_default=True, help="Group the records by.")
@click.option("--format", "form", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout.")
def report(from_: str | None, to: str | None, by: str, form: str, out: Path | None) -> None:
    """A statistics and supervision report of the records received in a period: on-time rate, late
    uploads, missing facts, retrievals and storage, as a table, JSON, CSV, HTML or PDF.

    Days are the site's local days on which records reached the platform; without --from or --to
    the period is open on that side. --format json prints one object whose keys are documented
    in README. Every report shown is recorded in the custody log.
    """
    start, end = _day(from_, "--from"), _day(to, "--to")
    if start and end and start > end:
        raise click.UsageError(f"--from {start} is after --to {end}")
    if form == "pdf" and out is None:
        raise click.UsageError("--format pdf needs --out FILE")
    from pipeline.catalog.db import session_scope
    from pipeline.reports import Period, build_report, record_report_view
    from pipeline.reports.render import as_csv, as_json, as_table, html_document
    from pipeline.runtime import open_catalog

    settings = read_settings()
    viewer = acting_viewer(settings)
    try:
        with session_scope(open_catalog(settings)) as session:
            found = build_report(session, viewer=viewer, period=Period(start, end, settings.zone), by=by)
            record_report_view(session, viewer=viewer, report=found, form=form, via="cli", tool=TOOL)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc
    unit = settings.unit_name or None
    if form == "pdf":
        assert out is not None
        _write_pdf(html_document(found, zone=settings.zone, unit=unit), out)
        return
    if form == "json":
        text = as_json(found) + "\n"
    elif form == "csv":
        text = as_csv(found)
    elif form == "html":
        text = html_document(found, zone=settings.zone, unit=unit)
    else:
        text = as_table(found, settings.zone) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8", newline="")


def _write_pdf(html: str, out: Path) -> None:
    """The HTML document printed to an A4 PDF by WeasyPrint; a plain error when it is missing."""
    try:
        from weasyprint import HTML  # an optional dependency: only this format needs it
    except ImportError:
        raise click.ClickException("--format pdf needs WeasyPrint, which is not installed") from None
    HTML(string=html).write_pdf(str(out))
