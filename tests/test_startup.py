"""The command starts quickly: ``--version`` and ``--help`` load neither the catalog nor the servers,
and ``--help`` still lists every command with its own one-line help."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from pipeline.cli import COMMANDS, main

HEAVY = ("sqlalchemy", "sqlmodel", "fastapi", "celery", "kombu", "alembic", "PIL", "pipeline.catalog")

# Runs the console script with the given arguments, then prints which of HEAVY it had imported.
PROBE = """
import json, sys
heavy, sys.argv = sys.argv[1].split(","), ["evidence", *sys.argv[2:]]
from pipeline.cli import run
try:
    run()
except SystemExit:
    pass
print(json.dumps(sorted(h for h in heavy if h in sys.modules)))
"""


def loaded_by(*args: str) -> tuple[list[str], str]:
    """The heavy modules ``evidence ARGS…`` imported, and what it printed before."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY), *args], capture_output=True, text=True, check=True
    )
    *shown, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(shown)


class TestStartUp:
    def test_version_imports_nothing_heavy(self) -> None:
        """`evidence --version` answers without the catalog, the web framework or the task queue."""
        loaded, shown = loaded_by("--version")
        assert "version" in shown
        assert loaded == []

    def test_help_lists_every_command_without_importing_them(self) -> None:
        """`evidence --help` names every command with its summary, and imports none of them."""
        loaded, shown = loaded_by("--help")
        assert loaded == []
        listed = shown.split("Commands:", 1)[1]
        for name in COMMANDS:
            assert f"\n  {name} " in listed
        assert "Take in files or folders" in listed and "Run a Celery worker" in listed

    def test_a_command_still_runs_and_has_its_own_help(self, cli) -> None:
        """Commands are found when they are asked for: their own help and their work as before."""
        result = cli("ingest", "--help")
        assert result.exit_code == 0 and "--jobs" in result.output
        assert cli("items", "--json").exit_code == 0

    def test_unknown_command_is_refused(self, cli) -> None:
        result = cli("ingets")
        assert result.exit_code == 2 and "No such command" in result.errors


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_summary_matches_the_commands_own_help(name: str) -> None:
    """The listing's summary of each command is the one its own help gives, at any width."""
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.name == name
    summary = click.Command(name, help=COMMANDS[name].summary)
    for limit in (30, 45, 60, 200):
        assert summary.get_short_help_str(limit) == command.get_short_help_str(limit)
