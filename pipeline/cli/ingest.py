"""``evidence ingest``: take in files or folders here, or hand them to the workers."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import click

from pipeline.catalog.models import SightingStatus
from pipeline.cli.inputs import BATCH, read_settings
from pipeline.cli.output import Report, jobs_option, json_option, progress
from pipeline.errors import PipelineError, describe
from pipeline.ingest.batch import collect_arrivals, enqueue_arrivals, ingest_arrivals
from pipeline.ingest.intake import IntakeResult
from pipeline.runtime import command_jobs, intake_context
from pipeline.stage.names import readable


@click.command()
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
@jobs_option("Copy, probe and derive the files")
@json_option()
def ingest(
    paths: Sequence[str],
    dock: str | None,
    source_policy: str | None,
    enqueue: bool,
    with_probe: bool,
    with_derive: bool,
    jobs: int | None,
    as_json: bool,
) -> None:
    """Take in files or folders: copy, hash, verify, catalogue, then dispose of the sources; then
    read their metadata and make their verified access copies."""
    if enqueue and jobs is not None:
        raise click.UsageError("--jobs is for files taken in here; with --enqueue the workers take them in")
    settings = read_settings()
    ctx = intake_context(settings)
    arrivals, early = collect_arrivals(paths, settings, dock=dock, policy=source_policy)
    statuses: Counter[str] = Counter()
    with Report(as_json) as report:

        def show(result: IntakeResult) -> None:
            statuses[result.status] += 1
            report.emit(result.as_json(), _line(result), failed=result.status == SightingStatus.FAILED)

        for result in early:
            show(result)
        outcomes: Iterable[list[IntakeResult]]
        if enqueue:
            from workers.app import create_app
            from workers.dispatch import Dispatcher

            queue = Dispatcher(create_app(settings))
            outcomes = (
                enqueue_arrivals(ctx, arrivals[i : i + BATCH], queue.intake) for i in range(0, len(arrivals), BATCH)
            )
        else:
            outcomes = ingest_arrivals(
                settings,
                ctx,
                arrivals,
                batch=BATCH,
                jobs=command_jobs(settings, jobs),
                with_probe=with_probe,
                with_derive=with_derive,
            )
        reported = 0
        with progress(len(arrivals), as_json, "ingesting") as bar:
            try:
                for results in outcomes:
                    for result in results:
                        show(result)
                    reported += len(results)
                    bar.update(len(results))
            except Exception as exc:  # e.g. the broker refused the queueing: the rest get their line
                if not isinstance(exc, PipelineError):
                    logging.getLogger("evidence.ingest").exception("ingest stopped")
                for arrival in arrivals[reported:]:
                    show(
                        IntakeResult(
                            None,
                            readable(arrival.path),
                            arrival.dock,
                            SightingStatus.FAILED,
                            error=f"{describe(exc)}; left where it is",
                        )
                    )
        if not as_json:
            summary = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
            click.echo(summary or "nothing to do", err=True)


def _line(result: IntakeResult) -> str:
    """One intake result for people: status, hash (or why not), path."""
    detail = result.sha256[:16] if result.sha256 else (result.error or "")
    return f"{result.status:<9} {detail:<16} {result.path}" + (
        f"  ({result.error})" if result.error and result.sha256 else ""
    )
