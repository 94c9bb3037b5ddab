"""docker-compose.yml and .env.example against the real command line and settings: no Docker
engine runs here, so what a cluster operator would meet first — a service whose command the CLI
refuses, a setting name the settings ignore, an example .env the settings reject — is caught here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from pipeline.cli import main as cli
from pipeline.config import PROJECT_ROOT
from pipeline.settings import Settings, load_settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
# Variables read outside the settings object (by the command line and the logging set-up).
OUTSIDE_SETTINGS = {"EVIDENCE_CONFIG", "EVIDENCE_ENV_FILE", "EVIDENCE_LOG_LEVEL", "EVIDENCE_SERVER", "EVIDENCE_TOKEN"}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def pipeline_services() -> dict[str, dict[str, Any]]:
    """The services that run the pipeline's image (the others are PostgreSQL, Redis, SeaweedFS)."""
    return {name: s for name, s in compose()["services"].items() if s.get("image") == "evidence-pipeline"}


def env_example() -> dict[str, str]:
    found = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            found[name.strip()] = value.strip()
    return found


def setting_names() -> set[str]:
    return {f"EVIDENCE_{name.upper()}" for name in Settings.model_fields} | OUTSIDE_SETTINGS


def parse(command: list[str]) -> click.Context:
    """Parse ``command`` as `evidence` would, down to its command, without running it; a command
    or option the CLI does not know raises click's UsageError. (The compose file gives no option
    before a command name, and the command groups take none of their own.)"""
    context = click.Context(cli, info_name="evidence")
    group: click.Command = cli
    words = list(command)
    while isinstance(group, click.Group):
        assert words, "a command group without its command"
        name, *words = words
        found = group.get_command(context, name)
        assert found is not None, f"`evidence {name}` is not a command"
        if isinstance(found, click.Group):
            context = click.Context(found, info_name=name, parent=context)
        else:
            context = found.make_context(name, words, parent=context)
        group = found
    return context


class TestServices:
    def test_every_pipeline_service_runs_a_command_the_cli_accepts(self) -> None:
        services = pipeline_services()
        assert {"web", "worker", "prober", "transcoder", "packager", "watcher", "beat"} <= set(services)
        for name, service in services.items():
            context = parse(service["command"])
            assert context.command.name == service["command"][0], name

    def test_the_worker_services_cover_every_queue(self) -> None:
        """Every stage's queue has a service consuming it, so nothing queued waits forever."""
        from workers.queues import STAGES

        consumed: set[str] = set()
        for service in pipeline_services().values():
            context = parse(service["command"])
            if context.command.name == "worker":
                consumed.update(q.strip() for q in str(context.params["queues"]).split(","))
        assert set(STAGES) <= consumed

    def test_a_wrong_command_would_be_caught(self) -> None:
        with pytest.raises(click.UsageError):
            parse(["worker", "--queue", "intake"])
        with pytest.raises(AssertionError):
            parse(["workers"])

    def test_the_object_store_publishes_no_port_but_s3_s(self) -> None:
        """SeaweedFS's filer deletes locked versions without credentials: nothing of it is
        published on the host, and its S3 credentials come from .env, never from the file."""
        seaweedfs = compose()["services"]["seaweedfs"]
        assert "ports" not in seaweedfs
        assert "-s3.port=8333" in seaweedfs["command"]
        env = seaweedfs["environment"]
        assert env["AWS_SECRET_ACCESS_KEY"].startswith("${EVIDENCE_S3_SECRET_KEY")


class TestSettingNames:
    def test_compose_names_only_real_settings(self) -> None:
        names: set[str] = set()
        for service in pipeline_services().values():
            names.update(service.get("environment", {}))
        text = COMPOSE.read_text(encoding="utf-8")
        names.update(re.findall(r"\$\{(EVIDENCE_[A-Z0-9_]+)", text))
        assert names and names <= setting_names(), names - setting_names()

    def test_the_example_env_names_only_real_settings(self) -> None:
        names = set(env_example())
        assert names and names <= setting_names(), names - setting_names()

    def test_every_pipeline_service_reads_the_env_file(self) -> None:
        for name, service in pipeline_services().items():
            assert service.get("env_file") == ".env", name

    def test_the_settings_accept_the_example_env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Read through EVIDENCE_ENV_FILE, as the commands on a compose host read it: its values
        are taken, the environment still wins, and the secret is never shown."""
        for name in list(env_example()):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("EVIDENCE_ENV_FILE", str(ENV_EXAMPLE))
        monkeypatch.setenv("EVIDENCE_HOME", str(tmp_path))
        monkeypatch.setenv("EVIDENCE_S3_RETENTION_DAYS", "30")
        settings = load_settings()
        assert settings.store == "local+s3" and settings.s3_bucket == "evidence-originals"
        assert settings.s3_retention_days == 30
        assert "change-me" not in repr(settings) and "change-me" not in str(settings.model_dump_json())

    def test_a_missing_env_file_is_refused_with_its_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from pipeline.errors import InvalidValueError

        monkeypatch.setenv("EVIDENCE_ENV_FILE", "/nonexistent/site.env")
        with pytest.raises(InvalidValueError, match=re.escape("/nonexistent/site.env")):
            load_settings()
