"""Disc packages: ``package`` (request and build), ``packages`` (list) and ``verify-package``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import click

from pipeline.catalog import queries
from pipeline.catalog.db import session_scope
from pipeline.catalog.models import PackageStatus
from pipeline.cli.inputs import acting_viewer, find_items, read_settings
from pipeline.cli.output import Report, emit, iso, json_option, progress
from pipeline.errors import NotFoundError, PipelineError, describe
from pipeline.package.media import MEDIA_NAMES, parse_size
from pipeline.runtime import existing_catalog, open_catalog, package_context


@click.command("package")
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
@json_option("One JSON object for the package.")
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
    settings = read_settings()
    viewer = acting_viewer(settings)
    package_ctx = package_context(settings)
    with Report(as_json) as report:
        try:
            with session_scope(package_ctx.engine) as session:
                item_ids, unknown = find_items(session, item_ids, viewer=viewer)
            if unknown:
                raise NotFoundError("; ".join(reason for _, reason in unknown))
            package_id = request_package(
                package_ctx,
                viewer=viewer,
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
            report.emit(
                {"package": None, "case": case_number, "status": "refused", "error": str(exc)},
                f"refused: {exc}",
                failed=True,
            )
            return
        with session_scope(package_ctx.engine) as session:
            lacking = queries.incomplete_items(session, package_id=package_id, viewer=viewer)
        incomplete = [entry.as_json() for entry in lacking]
        if incomplete and not as_json:
            click.echo(
                f"warning: {len(incomplete)} item(s) lack facts the regulation requires; their description says "
                "'not recorded' (set them with `evidence assign`):",
                err=True,
            )
            for entry in lacking:
                click.echo(f"  {entry.item}  {', '.join(entry.missing)}", err=True)
        if enqueue:
            from workers.app import create_app
            from workers.dispatch import Dispatcher

            Dispatcher(create_app(settings)).package([package_id])
            report.emit(
                {"package": package_id, "case": case_number, "status": "queued", "incomplete": incomplete},
                f"queued  {package_id}",
            )
            return
        with progress(100, as_json, "packaging") as bar:
            shown = {"percent": 0}

            def advance(what: str, done: int, total: int) -> None:
                percent = (done * 50 // max(total, 1)) + (50 if what == "verify" else 0)
                if percent > shown["percent"]:
                    bar.update(percent - shown["percent"])
                    shown["percent"] = percent

            result = build_package(package_ctx, package_id, progress=advance, stale_after=settings.stale_after)
        lines = [f"{result.status:<8} package {result.package} of case {result.case_number}: {result.items} item(s)"]
        for disc in result.discs:
            state = "verified" if disc.verified else "NOT verified"
            lines.append(f"  disc {disc.index}: {disc.path}  {disc.size:,} bytes  sha256 {disc.sha256}  {state}")
        if result.error:
            lines.append(f"  error: {result.error}")
        failed = result.status != PackageStatus.VERIFIED
        report.emit({**result.as_json(), "incomplete": incomplete}, "\n".join(lines), failed=failed)


@click.command("packages")
@click.option("--case", "case_number", help="Only packages of this case.")
@json_option("One JSON object per package.")
def packages_command(case_number: str | None, as_json: bool) -> None:
    """List disc packages: who asked, when, for what, and each disc's image, hash and verification."""
    settings = read_settings()
    viewer = acting_viewer(settings)
    with session_scope(open_catalog(settings)) as session:
        listed = queries.list_packages(session, viewer=viewer, case_number=case_number)
    for found in listed:
        lines = [
            f"{found.id}  {found.status:<9} case {found.case_number}  {len(found.items)} item(s) on "
            f"{found.media}, asked by {found.requested_by} at {iso(found.requested_at)}"
            + (f" for {found.purpose}" if found.purpose else "")
        ]
        lines += [f"  disc {d.index}: {d.path}  sha256 {d.sha256}" for d in found.discs]
        if found.error:
            lines.append(f"  error: {found.error}")
        emit(as_json, found.as_json(), "\n".join(lines))


@click.command("verify-package")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--no-catalog", is_flag=True, help="Check only against the disc's own manifest.")
@json_option("One JSON object per image or folder.")
def verify_package_command(paths: Sequence[Path], no_catalog: bool, as_json: bool) -> None:
    """Check disc images (.iso) or mounted or copied disc folders against their manifest and the
    catalog; name every missing, extra or altered file."""
    from pipeline.package.verify import verify_package

    settings = read_settings()
    engine = None if no_catalog else existing_catalog(settings)
    with Report(as_json) as report:
        for path in paths:
            try:
                check = verify_package(path, engine=engine, actor=settings.effective_actor)
            except Exception as exc:  # this disc fails with the reason; the next one is still checked
                if not isinstance(exc, PipelineError):
                    logging.getLogger("evidence.verify").exception("checking %s failed", path)
                report.emit(
                    {"path": str(path), "ok": False, "error": describe(exc)},
                    f"FAILED  {path}: {describe(exc)}",
                    failed=True,
                )
                continue
            lines = [
                f"{'ok' if check.ok else 'FAILED':<7} {path}: {check.files} files"
                + (f", package {check.package} disc {check.disc}" if check.package else "")
                + (", checked against the catalog" if check.catalog else "")
            ]
            lines += [f"  missing: {name}" for name in check.missing]
            lines += [f"  extra:   {name}" for name in check.extra]
            lines += [f"  altered: {name}" for name in check.altered]
            lines += [f"  problem: {problem}" for problem in check.problems]
            report.emit(check.as_json(), "\n".join(lines), failed=not check.ok)
