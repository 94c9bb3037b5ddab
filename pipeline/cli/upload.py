"""``evidence upload``: send files to a running application over HTTP (its resumable uploads), as a
dock or a script on another machine does. The protocol is :mod:`pipeline.upload_client`'s; this
command picks the files, shows progress and reports one line per file."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from pipeline.cli.output import Report, json_option

if TYPE_CHECKING:
    from pipeline.upload_client import TusClient, UploadResult

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


class ByteSize(click.ParamType):
    """A number of bytes: ``8388608``, ``512K``, ``8M`` or ``1G`` (binary units)."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        found = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
        if not found:
            self.fail(f"{value!r} is not a size such as 8M, 512K or 1048576", param, ctx)
        size = int(found.group(1)) * _UNITS[found.group(2).upper()]
        if size < 1:
            self.fail("must be at least one byte", param, ctx)
        return size


def files_of(paths: Sequence[Path]) -> Iterator[Path | tuple[Path, str]]:
    """Each file named, and every file under each folder named (sorted); a path that is neither
    comes back with the reason."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            yield path
        elif path.exists():
            yield path, "not a regular file"
        else:
            yield path, "no such file or folder"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--server",
    envvar="EVIDENCE_SERVER",
    show_envvar=True,
    required=True,
    metavar="URL",
    help="The application's address, e.g. https://evidence.example:8000/",
)
@click.option(
    "--token",
    envvar="EVIDENCE_TOKEN",
    show_envvar=True,
    required=True,
    metavar="TOKEN",
    help="API token to upload with (better from the environment than on the command line).",
)
@click.option("--dock", help="Dock to record the files under (custodians; a dock's token is its own dock).")
@click.option(
    "--chunk-size",
    type=ByteSize(),
    default="8M",
    show_default=True,
    help="Bytes sent per request (each with its own SHA-256).",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Retries in a row after a dropped connection or a server error before a file is given up.",
)
@json_option()
def upload(
    paths: Sequence[Path],
    server: str,
    token: str,
    dock: str | None,
    chunk_size: int,
    retries: int,
    as_json: bool,
) -> None:
    """Upload files or folders to the application: each file's SHA-256 is declared first and each
    chunk carries its own, so only the very bytes sent are catalogued. An interrupted upload
    resumes from the server's offset, also when the same command is run again later."""
    from pipeline.upload_client import FAILED, TusClient, UploadResult, UploadState, default_state_path

    address = urlsplit(server)
    if address.scheme not in ("http", "https") or not address.netloc:
        raise click.BadParameter(f"{server!r} is not an http:// or https:// address", param_hint="--server")
    if not token.strip():
        raise click.BadParameter("the token is empty", param_hint="--token")
    show_bar = not as_json and sys.stderr.isatty()
    state = UploadState(default_state_path())
    with (
        Report(as_json) as report,
        TusClient(server, token.strip(), chunk_size=chunk_size, retries=retries, state=state) as client,
    ):
        for found in files_of(paths):
            if isinstance(found, tuple):
                path, reason = found
                result = UploadResult(str(path), None, None, None, None, FAILED, reason)
            else:
                try:
                    result = _send(client, found, dock, show_bar)
                except KeyboardInterrupt:
                    click.echo(f"interrupted: {found}; run the same command again to resume", err=True)
                    sys.exit(130)
            report.emit(result.as_json(), _line(result), failed=result.status == FAILED)


def _send(client: TusClient, path: Path, dock: str | None, show_bar: bool) -> UploadResult:
    """Upload one file, with a progress bar on stderr for a person watching."""
    if not show_bar:
        return client.upload(path, dock=dock)
    with click.progressbar(length=path.stat().st_size, label=path.name, file=sys.stderr) as bar:
        return client.upload(path, dock=dock, progress=bar.update)


def _line(result: UploadResult) -> str:
    """One file for people: status, the item (or why not), the path."""
    if result.error is not None:
        return f"{result.status:<9} {result.path}: {result.error}"
    return f"{result.status:<9} {result.item}  {result.path}"
