"""The ``evidence`` command. The only package that prints.

Every reporting command takes ``--json`` (one JSON object per line on stdout) and exits non-zero
when any input failed. People get a progress bar on stderr and a summary line.

One module per command family: ``ingest``, ``catalog`` (items, item, case, overdue), ``facts``
(assign), ``stages`` (probe, derive, fixity), ``packages`` (package, packages, verify-package),
``report``, ``audit``, ``accounts`` (user, token), ``upload`` (to a running application, over HTTP) and
``running`` (worker, watch, serve). They share ``output`` (the ``--json`` option, lines, progress,
exit status) and ``inputs`` (settings, items named by ID or hash).

The command starts quickly: a family's module (with the catalog, the stages and the servers it
needs) is imported only when one of its commands runs, and ``evidence --help`` lists the commands
from the table below without importing any of them.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import NamedTuple

import click

__all__ = ["COMMANDS", "LazyGroup", "main", "run"]


class Lazy(NamedTuple):
    """Where a command lives (module and attribute) and its one-line help for the listing."""

    module: str
    attribute: str
    summary: str


# By command name, grouped as the families above. `summary` is the first paragraph of the
# command's own help (a test keeps them equal).
COMMANDS: dict[str, Lazy] = {
    "ingest": Lazy(
        "ingest",
        "ingest",
        "Take in files or folders: copy, hash, verify, catalogue, then dispose of the sources; then "
        "read their metadata and make their verified access copies.",
    ),
    # sending files to a running application over HTTP
    "upload": Lazy(
        "upload",
        "upload",
        "Upload files or folders to the application: each file's SHA-256 is declared first and each "
        "chunk carries its own, so only the very bytes sent are catalogued.",
    ),
    # reading the catalog, and setting facts by hand
    "items": Lazy("catalog", "items", "List catalogued items, oldest first; filters combine."),
    "item": Lazy("catalog", "item", "Show one item (by ID or SHA-256, or a unique prefix of either) with its history."),
    "case": Lazy(
        "catalog",
        "case_command",
        "Show a case, or set its enforcement target (records of one target are then found together), "
        "its class, or who handles it.",
    ),
    "overdue": Lazy(
        "catalog",
        "overdue",
        "Records uploaded after their deadline, grouped by officer and dock, with working days late.",
    ),
    "assign": Lazy("facts", "assign", "Set facts (or the class) by hand; they win over extracted ones."),
    # stages again by hand
    "probe": Lazy(
        "stages",
        "probe_command",
        "Read metadata again (or for the first time) for the given items: facts, issues, deadline.",
    ),
    "derive": Lazy(
        "stages",
        "derive_command",
        "Make (or remake) access copies, thumbnails and masters, each verified and stored.",
    ),
    "fixity": Lazy(
        "stages",
        "fixity",
        "Re-hash every stored object (or the given items) and name each that no longer matches.",
    ),
    "archive": Lazy(
        "archive",
        "archive_command",
        "Copy originals to the S3 store (EVIDENCE_STORE=local+s3), each read back and compared there, and "
        "record each copy.",
    ),
    # disc packages
    "package": Lazy(
        "packages",
        "package_command",
        "Make disc-ready ISO images of a case's items, with description, manifests and BagIt, and read "
        "every image back to check it.",
    ),
    "packages": Lazy(
        "packages",
        "packages_command",
        "List disc packages: who asked, when, for what, and each disc's image, hash and verification.",
    ),
    "verify-package": Lazy(
        "packages",
        "verify_package_command",
        "Check disc images (.iso) or mounted or copied disc folders against their manifest and the "
        "catalog; name every missing, extra or altered file.",
    ),
    # the supervision report
    "report": Lazy(
        "report",
        "report",
        "A statistics and supervision report of the records received in a period: on-time rate, late "
        "uploads, missing facts, retrievals and storage, as a table, JSON, CSV, HTML or PDF.",
    ),
    # the custody log
    "audit": Lazy("audit", "audit", "The custody log."),
    # supervised access to secret records
    "access": Lazy(
        "access", "access", "Access to trade-secret and state-secret records: request, approve, deny, list."
    ),
    # accounts and API tokens
    "user": Lazy("accounts", "user", "Accounts: who may sign in, with which roles and clearances."),
    "token": Lazy("accounts", "token", "API tokens for docks and scripts."),
    # running the pipeline
    "worker": Lazy("running", "worker", "Run a Celery worker on the given stage queues."),
    "watch": Lazy("running", "watch", "Watch inbox/<dock>/ folders and hand complete files to the workers."),
    "serve": Lazy(
        "running",
        "serve",
        "Everything in one command: web application, watcher, reconciler and workers (embedded default: no servers).",
    ),
    "web": Lazy("web", "web", "Run the web application (pages and /api/v1) until Ctrl+C or SIGTERM."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported from their modules when one is asked for (to run it, or
    for its own help); the group's help lists them by the summaries in ``lazy``."""

    def __init__(self, *args: object, lazy: dict[str, Lazy], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # click's own keywords, passed through
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            where = self.lazy[cmd_name]
            command = getattr(importlib.import_module(f"{__name__}.{where.module}"), where.attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{where.module}.{where.attribute} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:  # imported already (or added directly): its own help
                text = self.commands[name].get_short_help_str(limit)
            else:  # shortened exactly as click shortens a command's help
                text = click.Command(name, help=self.lazy[name].summary).get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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


def run() -> None:
    """The console script: ``main``, with the project's own errors shown as one line and status 1."""
    from pipeline.errors import PipelineError

    try:
        main(standalone_mode=True)
    except PipelineError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
