"""``evidence archive``: replicate originals from the local store to the S3 store."""

from __future__ import annotations

from collections.abc import Sequence

import click

from pipeline.catalog.db import session_scope
from pipeline.cli.inputs import BATCH, acting_viewer, find_items, read_settings
from pipeline.cli.output import Report, json_option, progress
from pipeline.errors import PipelineError
from pipeline.runtime import archive_context


@click.command("archive")
@click.argument("idents", nargs=-1)
@click.option(
    "--all-pending", is_flag=True, help="Every item without a verified S3 copy (but those whose archive failed)."
)
@json_option()
def archive_command(idents: Sequence[str], all_pending: bool, as_json: bool) -> None:
    """Copy originals to the S3 store (EVIDENCE_STORE=local+s3), each read back and compared there, and
    record each copy.

    An item already copied and verified is skipped; an S3 store that cannot be reached leaves the
    item pending, for the next run.
    """
    from pipeline.archive.stage import ArchiveResult, archive, items_to_archive

    if bool(idents) == all_pending:
        raise click.UsageError("give item IDs, or --all-pending (not both)")
    settings = read_settings()
    try:
        ctx = archive_context(settings)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from exc
    name = ctx.replica.name
    with session_scope(ctx.engine) as session:
        if idents:
            ids, unknown = find_items(session, idents, viewer=acting_viewer(settings))
        else:
            ids, unknown = items_to_archive(session, name), []
    with Report(as_json) as report:

        def show(result: ArchiveResult) -> None:
            report.emit(
                result.as_json(),
                f"{result.status:<10} {result.item}  {result.error or result.key or ''}",
                failed=result.status in ("failed", "missing"),
            )

        for ident, reason in unknown:
            show(ArchiveResult(ident, "missing", name, error=reason))
        with progress(len(ids), as_json, "archiving") as bar:
            for start in range(0, len(ids), BATCH):
                for result in archive(ctx, ids[start : start + BATCH]):
                    show(result)
                    bar.update(1)
