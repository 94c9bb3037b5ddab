"""How commands report: the shared ``--json`` option, one line (or JSON object) per result on
stdout, a progress bar on stderr for people, and exit status 1 when any input failed."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


def json_option(text: str = "One JSON object per line.") -> Callable[[Decorated], Decorated]:
    """The ``--json`` flag of every reporting command, passed to it as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=text)


def jobs_option(what: str) -> Callable[[Decorated], Decorated]:
    """The ``--jobs N`` option of the commands that spread their work over processes, passed as ``jobs``."""
    return click.option(
        "--jobs",
        "jobs",
        type=click.IntRange(min=1),
        metavar="N",
        help=f"{what} in N processes at once (default: the jobs setting, else one per core).",
    )


def echo_json(data: dict[str, Any]) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def emit(as_json: bool, data: dict[str, Any], human: str) -> None:
    """``data`` as JSON for machines, or the ``human`` text for people."""
    if as_json:
        echo_json(data)
    else:
        click.echo(human)


def progress(total: int, as_json: bool, label: str) -> ProgressBar[int]:
    """A progress bar on stderr when a person watches more than one input go by; silent otherwise."""
    show = not as_json and sys.stderr.isatty() and total > 1
    return click.progressbar(length=total, label=label, file=sys.stderr if show else open(os.devnull, "w"))


def iso(moment: datetime | None) -> str | None:
    """A time as ISO 8601, or None."""
    return moment.isoformat() if moment else None


class Report:
    """The results of one command, each shown as it comes. Leaving the ``with`` block normally exits
    with status 1 when any of them failed; an error raised inside the block passes through as it is."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.failed = 0

    def emit(self, data: dict[str, Any], human: str, *, failed: bool = False) -> None:
        """Show one result; ``failed`` counts it against the exit status."""
        self.failed += failed
        emit(self.as_json, data, human)

    def __enter__(self) -> Report:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None and self.failed:
            sys.exit(1)
