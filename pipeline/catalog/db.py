"""Engines and sessions. SQLite runs in WAL mode with every write transaction taking the write lock
up front (BEGIN IMMEDIATE), so several worker processes write safely; PostgreSQL is used as is."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, insert, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from pipeline.errors import TransientError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock keys: one for schema changes, one for appending to the custody chain.
LOCK_MIGRATE = 0x45564D47
LOCK_CUSTODY = 0x45564354


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # a committed row must survive power loss
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# The free-text search's index (migration 0008): SQLite's FTS5 table with its shadow tables, and
# PostgreSQL's trigram indexes, made only where pg_trgm could be had. Not models; comparisons of the
# schema with the models leave them out (:func:`modelled`).
SEARCH_INDEX = ("item_search", "ix_item_trgm_", "ix_case_trgm_")


def modelled(name: str | None, type_: str, _parent: object) -> bool:
    """Whether a database object is one the models declare (Alembic's ``include_name``)."""
    return not (name and type_ in ("table", "index") and name.startswith(SEARCH_INDEX))


_engines: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines hold pools; never share them across fork)."""
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = _create_engine(url)
    return engine


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


def dispose_engines() -> None:
    """Forget pooled connections inherited through fork; the child opens its own."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A short transaction: commit on success, roll back on error.

    Lost connections are raised as :class:`TransientError` so callers retry with backoff.
    """
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise TransientError(f"catalog database unavailable: {exc.orig}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _alembic_config(connection: Any) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:None|"([^"]+)"|'([^']+)')\s*$""", re.M)


def _declared_head() -> str | None:
    """The newest revision the scripts in ``versions/`` declare, read without loading Alembic
    (about a quarter of a second of start-up). None unless every script names one revision and at
    most one parent and they form one line; Alembic itself decides then."""
    parents: dict[str, str | None] = {}
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = _REVISION_LINE.findall(script.read_text(encoding="utf-8"))
        names = [name for name, *_ in found]
        if sorted(names) != ["down_revision", "revision"]:
            return None
        values = {name: double or single or None for name, double, single in found}
        revision = values["revision"]
        if revision is None or revision in parents:
            return None
        parents[revision] = values["down_revision"]
    heads = set(parents) - set(parents.values())
    if len(heads) != 1 or len(set(parents.values())) != len(parents):
        return None
    return heads.pop()


def _recorded_revisions(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        try:
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except (OperationalError, ProgrammingError):
            return []  # no schema yet


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (no-op when it is already there)."""
    declared = _declared_head()
    if declared is not None and _recorded_revisions(engine) == [declared]:
        return
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_MIGRATE})
        command.upgrade(_alembic_config(connection), "head")


def insert_rows(session: Session, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in one statement per batch.

    Rows that all name the same columns go straight to the table (one executemany, none of the
    ORM's per-row bookkeeping); mixed shapes go through the ORM, where ``render_nulls`` keeps None
    values in the statement so that rows of different shapes do not split it row by row.
    """
    if not rows:
        return
    columns = rows[0].keys()
    if all(row.keys() == columns for row in rows):
        session.execute(insert(model.__table__), list(rows))
    else:
        session.execute(insert(model).execution_options(render_nulls=True), list(rows))
