"""The ``evidence`` command. The only package that prints.

Every reporting command takes ``--json`` (one JSON object per line on stdout) and exits non-zero
when any input failed. People get a progress bar on stderr and a summary line.

One module per command family: ``ingest``, ``catalog`` (items, item, case, overdue), ``facts``
(assign), ``stages`` (probe, derive, fixity), ``packages`` (package, packages, verify-package),
``audit``, ``accounts`` (user, token), ``upload`` (to a running application, over HTTP) and
``running`` (worker, watch, serve). They share ``output`` (the ``--json`` option, lines, progress,
exit status) and ``inputs`` (settings, items named by ID or hash). Commands import the stages they
run when they run, so the command starts quickly.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from pipeline.cli.access import access
from pipeline.cli.accounts import token, user
from pipeline.cli.audit import audit
from pipeline.cli.catalog import case_command, item, items, overdue
from pipeline.cli.facts import assign
from pipeline.cli.ingest import ingest
from pipeline.cli.packages import package_command, packages_command, verify_package_command
from pipeline.cli.running import serve, watch, worker
from pipeline.cli.stages import derive_command, fixity, probe_command
from pipeline.cli.upload import upload
from pipeline.cli.web import web
from pipeline.errors import PipelineError

__all__ = ["main", "run"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evidence-pipeline")
@click.option(
    "--as",
    "acting_as",
    metavar="NAME",
    help="Act as this account (its roles, clearances and cases), not with the server's own authority.",
)
@click.pass_context
def main(context: click.Context, acting_as: str | None) -> None:
    """Evidence media pipeline: verified intake, catalog and custody log."""
    context.ensure_object(dict)["acting_as"] = acting_as
    logging.basicConfig(
        level=os.environ.get("EVIDENCE_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


COMMANDS: tuple[click.Command, ...] = (
    ingest,
    # sending files to a running application over HTTP
    upload,
    # reading the catalog, and setting facts by hand
    items,
    item,
    case_command,
    overdue,
    assign,
    # stages again by hand
    probe_command,
    derive_command,
    fixity,
    # disc packages
    package_command,
    packages_command,
    verify_package_command,
    # the custody log
    audit,
    # supervised access to secret records
    access,
    # accounts and API tokens
    user,
    token,
    # running the pipeline
    worker,
    watch,
    serve,
    web,
)
for _command in COMMANDS:
    main.add_command(_command)


def run() -> None:
    """The console script: ``main``, with the project's own errors shown as one line and status 1."""
    try:
        main(standalone_mode=True)
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
