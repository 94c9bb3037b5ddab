"""Files on disk are the pipeline's own: the data folder and its folders 0750, the catalog and logs
0640, stored originals 0440, whatever the umask; and `serve`/`web` refuse to start in production
while other accounts can read or change the data folder or the catalog."""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from pipeline.catalog.db import dispose_engines
from pipeline.cli.running import _log_to_file, guard_data_modes
from pipeline.runtime import open_catalog, open_to_others, sqlite_path
from pipeline.settings import Settings, load_settings
from pipeline.storage import LocalStore
from tests.test_store import put_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


@pytest.fixture
def database_url() -> str:
    """The embedded catalog: its file is what is checked here."""
    return ""


@pytest.fixture
def made(settings: Settings, umask: int) -> Iterator[Settings]:
    """A data folder made from nothing under the umask."""
    settings.ensure_dirs()
    open_catalog(settings)
    yield settings
    dispose_engines()


class TestModes:
    def test_folders_are_0750(self, made: Settings) -> None:
        for folder in (made.home_dir, made.inbox_dir, made.processed_dir, made.quarantine_dir, made.store_dir):
            assert mode(folder) == 0o750, folder

    def test_the_catalog_and_its_journal_are_0640(self, made: Settings) -> None:
        catalog = sqlite_path(made.effective_database_url)
        assert catalog is not None
        journals = [catalog.with_name(f"{catalog.name}-{end}") for end in ("wal", "shm")]
        assert [mode(p) for p in [catalog, *journals] if p.exists()] == [0o640] * (
            1 + sum(p.exists() for p in journals)
        )

    def test_stored_originals_are_0440(self, made: Settings, tmp_path: Path) -> None:
        source = tmp_path / "clip.bin"
        source.write_bytes(b"recording" * 100)
        store = LocalStore(made.store_dir)
        stored = put_file(store, source)
        assert mode(store.path(stored.sha256)) == 0o440
        assert mode(store.path(stored.sha256).parent) == 0o750
        assert mode(store.objects_dir) == 0o750

    def test_log_files_are_0640(self, made: Settings) -> None:
        path = _log_to_file(made, "modes", "WARNING", console=True)
        try:
            assert mode(path) == 0o640 and mode(path.parent) == 0o750
        finally:
            import logging

            root = logging.getLogger()
            for handler in [h for h in root.handlers if getattr(h, "baseFilename", "") == str(path)]:
                root.removeHandler(handler)
                handler.close()

    def test_an_open_data_folder_is_closed_on_start(self, settings: Settings, umask: int) -> None:
        """A data folder made by hand with 0755 (or 0777) is brought to 0750."""
        settings.home_dir.mkdir(parents=True)
        settings.home_dir.chmod(0o777)
        settings.ensure_dirs()
        assert mode(settings.home_dir) == 0o750

    def test_an_older_open_catalog_is_closed_when_opened(self, settings: Settings) -> None:
        catalog = settings.home_dir / "catalog.sqlite3"
        settings.ensure_dirs()
        catalog.touch()
        catalog.chmod(0o666)
        try:
            open_catalog(settings)
            assert mode(catalog) == 0o640
        finally:
            dispose_engines()

    def test_a_data_group_owns_the_folder_and_what_is_made_in_it(self, env: dict[str, str]) -> None:
        group = grp.getgrgid(os.getgid()).gr_name
        settings = load_settings(data_group=group)
        settings.ensure_dirs()
        assert mode(settings.home_dir) == 0o2750
        assert settings.home_dir.stat().st_gid == os.getgid()
        assert mode(settings.inbox_dir) == 0o2750

    def test_an_unknown_group_is_refused_up_front(self, env: dict[str, str]) -> None:
        with pytest.raises(ValueError, match="data_group 'no-such-group-here': no such group"):
            load_settings(data_group="no-such-group-here")


class TestStartCheck:
    def test_open_folder_and_catalog_are_named(self, settings: Settings) -> None:
        settings.home_dir.mkdir(parents=True)
        settings.home_dir.chmod(0o755)
        catalog = settings.home_dir / "catalog.sqlite3"
        catalog.touch()
        catalog.chmod(0o644)
        assert open_to_others(settings) == [
            f"the data folder {settings.home_dir} is open to other accounts (mode 0755; make it 0750)",
            f"the catalog {catalog} is open to other accounts (mode 0644; make it 0640)",
        ]

    def test_production_refuses_and_development_warns(
        self, settings: Settings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings.home_dir.mkdir(parents=True)
        settings.home_dir.chmod(0o705)
        guard_data_modes(settings)
        assert "warning: the data folder" in capsys.readouterr().err
        production = load_settings(environment="production", home=settings.home_dir, quiet_period=5)
        with pytest.raises(click.ClickException, match=r"refusing to start: the data folder .*mode 0705"):
            guard_data_modes(production)

    def test_a_private_data_folder_passes(self, made: Settings, capsys: pytest.CaptureFixture[str]) -> None:
        assert open_to_others(made) == []
        guard_data_modes(load_settings(environment="production", home=made.home_dir, quiet_period=5))
        assert capsys.readouterr().err == ""
