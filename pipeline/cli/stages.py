"""Running a stage again by hand: ``probe``, ``derive`` and ``fixity``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
from sqlmodel import Session

from pipeline.catalog import queries
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import DerivativeStatus, StageStatus
from pipeline.catalog.viewer import Viewer
from pipeline.cli.inputs import BATCH, acting_viewer, find_items, read_settings
from pipeline.cli.output import Report, jobs_option, json_option, progress
from pipeline.runtime import Spread, command_jobs, derive_context, probe_context, stage_context, store_for

if TYPE_CHECKING:
    from pipeline.probe.stage import ProbeContext, ProbeResult
    from pipeline.transcode.stage import DeriveContext, DeriveResult


def _stage_ids(
    session: Session, stage: str, idents: Sequence[str], pending: bool, retry_failed: bool, viewer: Viewer
) -> tuple[list[str], list[tuple[str, str]]]:
    """The item IDs a stage command works on, and each given ID that names no item, with why."""
    if bool(idents) == (pending or retry_failed):
        raise click.UsageError("give item IDs, or --pending and/or --retry-failed (not both)")
    if not idents:
        wanted = [(StageStatus.PENDING, pending), (StageStatus.FAILED, retry_failed)]
        statuses: list[str] = [status for status, asked in wanted if asked]
        return queries.items_in_stage(session, stage, statuses, viewer=viewer), []
    ids, unknown = find_items(session, idents, viewer=viewer)
    return list(dict.fromkeys(ids)), unknown


@click.command("probe")
@click.argument("idents", nargs=-1)
@click.option("--pending", is_flag=True, help="Every item whose probe stage is still to do.")
@click.option("--retry-failed", is_flag=True, help="Every item whose probe stage failed (after its cause is fixed).")
@jobs_option("Probe the items")
@json_option()
def probe_command(idents: Sequence[str], pending: bool, retry_failed: bool, jobs: int | None, as_json: bool) -> None:
    """Read metadata again (or for the first time) for the given items: facts, issues, deadline."""
    settings = read_settings()
    probe_ctx = probe_context(settings)
    viewer = acting_viewer(settings)
    with session_scope(probe_ctx.engine) as session:
        ids, unknown = _stage_ids(session, "probe", idents, pending, retry_failed, viewer)
    with Report(as_json) as report:
        for ident, reason in unknown:
            report.emit(
                {"item": ident, "status": "missing", "issues": [], "error": reason}, f"missing {reason}", failed=True
            )
        with (
            progress(len(ids), as_json, "probing") as bar,
            Spread(command_jobs(settings, jobs), probe_ctx, probe_context, settings) as spread,
        ):
            for start in range(0, len(ids), BATCH):
                for result in (r for found in spread.each(_probe, ids[start : start + BATCH]) for r in found):
                    report.emit(
                        {
                            "item": result.item,
                            "status": result.status,
                            "issues": list(result.issues),
                            **({"error": result.error} if result.error else {}),
                        },
                        f"{result.status:<7} {result.item}  "
                        + (result.error if result.error else ", ".join(result.issues) or "no issues"),
                        failed=result.status != "probed",
                    )
                bar.update(min(BATCH, len(ids) - start))


@click.command("derive")
@click.argument("idents", nargs=-1)
@click.option("--pending", is_flag=True, help="Every item whose derivatives are still to make.")
@click.option("--retry-failed", is_flag=True, help="Every item whose derive stage failed (after its cause is fixed).")
@click.option("--profile", "profiles", multiple=True, help="Only this profile (repeatable).")
@click.option("--force", is_flag=True, help="Make them again even where a verified one exists.")
@jobs_option("Derive the items")
@json_option("One JSON object per derivative.")
def derive_command(
    idents: Sequence[str],
    pending: bool,
    retry_failed: bool,
    profiles: Sequence[str],
    force: bool,
    jobs: int | None,
    as_json: bool,
) -> None:
    """Make (or remake) access copies, thumbnails and masters, each verified and stored."""
    from pipeline.transcode.stage import DeriveResult

    settings = read_settings()
    derive_ctx = derive_context(settings)
    if unknown_profiles := sorted(set(profiles) - set(derive_ctx.config.profiles)):
        raise click.BadParameter(
            f"unknown profile(s) {', '.join(unknown_profiles)}; known: {', '.join(derive_ctx.config.profiles)}",
            param_hint="--profile",
        )
    viewer = acting_viewer(settings)
    with session_scope(derive_ctx.engine) as session:
        ids, unknown = _stage_ids(session, "derive", idents, pending, retry_failed, viewer)
    with Report(as_json) as report:

        def show(result: DeriveResult) -> None:
            report.emit(
                result.as_json(),
                f"{result.status:<8} {result.item}  {result.profile:<24} {result.error or result.sha256 or ''}",
                failed=result.status in (DerivativeStatus.FAILED, "missing"),
            )

        for ident, reason in unknown:
            show(DeriveResult(ident, "", "", "missing", error=reason))
        with (
            progress(len(ids), as_json, "deriving") as bar,
            Spread(command_jobs(settings, jobs), derive_ctx, derive_context, settings) as spread,
        ):
            for made in spread.each(_derive, [(item_id, tuple(profiles), force) for item_id in ids]):
                for result in made:
                    show(result)
                bar.update(1)


def _probe(ctx: ProbeContext, item_id: str) -> list[ProbeResult]:
    """One item probed (in a worker process, or here)."""
    from pipeline.probe.stage import probe

    return probe(ctx, [item_id])


def _derive(ctx: DeriveContext, task: tuple[str, tuple[str, ...], bool]) -> list[DeriveResult]:
    """One item's derivatives made (in a worker process, or here): the profiles named, or all; again
    when forced."""
    from pipeline.transcode.stage import derive

    item_id, only, force = task
    return derive(ctx, [item_id], only=only, force=force)


@click.command()
@click.argument("ids", nargs=-1)
@json_option()
def fixity(ids: Sequence[str], as_json: bool) -> None:
    """Re-hash every stored object (or the given items) and name each that no longer matches.

    With EVIDENCE_STORE=local+s3 the S3 copies too, a bad copy repaired from a good one."""
    from pipeline.fixity import run_fixity

    settings = read_settings()
    ctx = stage_context(settings)
    replicas = {name: store for name, store in store_for(settings).items() if name != ctx.store.name}
    outcomes: Counter[str] = Counter()
    with Report(as_json) as report:
        viewer = acting_viewer(settings)
        with session_scope(ctx.engine) as session:
            items, unknown = find_items(session, ids, viewer=viewer)
            total = len(items) if ids else queries.count_items(session, viewer=viewer)
        for ident, reason in unknown:
            report.emit({"item": ident, "status": "unknown", "error": reason}, f"UNKNOWN: {reason}", failed=True)
        with progress(total, as_json, "checking") as bar:
            checks = run_fixity(ctx, items=items, replicas=replicas) if total else []
            for result in checks:
                outcomes[result.outcome] += 1
                bar.update(1)
                if as_json or not result.ok or ids:
                    report.emit(
                        result.as_json(),
                        f"{result.outcome.upper()}: item {result.item} {result.key}"
                        + (f": {result.error}" if result.error else ""),
                        failed=not result.ok,
                    )
        if not as_json:
            click.echo(
                f"{outcomes['ok']} ok, {outcomes['mismatch']} altered, {outcomes['missing']} missing"
                + (f", {outcomes['error']} could not be checked" if outcomes["error"] else ""),
                err=True,
            )
