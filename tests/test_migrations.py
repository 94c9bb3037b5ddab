"""Schema migrations upgrade a catalog that already holds evidence without losing a row."""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text
from sqlmodel import SQLModel

import pipeline.catalog.models  # noqa: F401  (declares the tables)
from pipeline.catalog.db import MIGRATIONS, _alembic_config, _declared_head, migrate, modelled


def catalog_at(path: Path, revision: str) -> Engine:
    """A SQLite catalog migrated only up to ``revision``, holding one dock and one item."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)
        connection.execute(text("INSERT INTO dock (id, created_at) VALUES ('dock1', '2025-01-01 00:00:00')"))
        connection.execute(
            text(
                "INSERT INTO item (id, sha256, size, digests, original_name, original_name_raw, media_kind,"
                " dock_id, status, created_at) VALUES ('01J0000000000000000000000A', :sha, 5, '{}', 'a.mp4',"
                " x'612e6d7034', 'video', 'dock1', 'stored', '2025-01-01 00:00:00')"
            ),
            {"sha": "a" * 64},
        )
    return engine


class TestMigrations:
    def test_upgrade_from_first_revision_keeps_items(self, tmp_path) -> None:
        engine = catalog_at(tmp_path / "old.sqlite3", "0001")
        migrate(engine)
        with engine.connect() as connection:
            row = connection.execute(
                text("SELECT original_name, review_status, classification, deadline_provisional, media FROM item")
            ).one()
        assert tuple(row) == ("a.mp4", "pending-review", "unclassified", 0, "{}")

    def test_head_read_from_the_scripts_is_alembics(self) -> None:
        """The start-up check that skips loading Alembic agrees with Alembic on the newest revision."""
        assert _declared_head() == ScriptDirectory(str(MIGRATIONS)).get_current_head()

    def test_fresh_catalog_is_migrated_then_left_alone(self, tmp_path) -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
        migrate(engine)
        migrate(engine)
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [_declared_head()]

    def test_migrations_build_the_schema_the_models_declare(self, settings) -> None:
        """A model changed without a migration (a column, a type, an index) shows up here, on
        SQLite and on PostgreSQL, instead of in a production catalog."""
        settings.ensure_dirs()
        engine = create_engine(settings.effective_database_url)
        migrate(engine)
        with engine.connect() as connection, warnings.catch_warnings():
            # SQLite cannot reflect expression indexes; PostgreSQL compares them.
            warnings.filterwarnings("ignore", message=".*expression-based index")
            # The free-text search's index is no model (pipeline.catalog.db.SEARCH_INDEX).
            opts = {"compare_type": True, "include_name": modelled}
            context = MigrationContext.configure(connection, opts=opts)
            assert compare_metadata(context, SQLModel.metadata) == []
        engine.dispose()

    def test_free_text_has_one_index_per_database(self, settings) -> None:
        """SQLite searches its FTS5 trigram table; PostgreSQL one trigram index over the searched
        columns joined (0009), the per-column ones of 0008 gone."""
        settings.ensure_dirs()
        engine = create_engine(settings.effective_database_url)
        migrate(engine)
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                names = connection.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'item_search%'"))
                assert "item_search" in set(names.scalars())
            else:
                names = connection.execute(
                    text(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'item'"
                        " AND indexname LIKE 'ix_item_trgm%'"
                    )
                )
                assert set(names.scalars()) == {"ix_item_trgm_search"}
        engine.dispose()
