"""catalog at scale: indexes for the listings, review queues and overdue report, and a text index
for the free-text search (SQLite FTS5 with the trigram tokenizer, kept current by triggers;
PostgreSQL pg_trgm GIN indexes when the extension can be had, else the search scans as before)

A later migration that rebuilds the ``item`` table on SQLite (a batch alter) must drop the
``item_search`` triggers first and, afterwards, create them again and rebuild the index
(``INSERT INTO item_search(item_search) VALUES('rebuild')``): the index follows the rows' rowids.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The item columns the free text is looked for in (pipeline.catalog.queries.items).
SEARCHED = ("original_name", "case_number", "captured_place", "collector", "proof_object")
FACTS = ("case_number", "captured_at", "captured_place", "collector", "proof_object")
# Partial indexes: written as each database writes ``late IS true`` (so the planners match them).
LATE = {"sqlite": "late IS 1", "postgresql": "late IS true"}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index("ix_item_created_id", "item", ["created_at", "id"])
    op.create_index("ix_item_collector_captured", "item", ["collector", "captured_at"])
    unclassified = sa.text("classification = 'unclassified'")
    op.create_index(
        "ix_item_unclassified", "item", ["created_at", "id"], sqlite_where=unclassified, postgresql_where=unclassified
    )
    # What a count of the items a viewer may see reads: their case and class, not the rows. The
    # class does not lead any index: SQLite would take it for a narrow one, and read every row.
    op.create_index("ix_item_case_class", "item", ["case_number", "classification"])
    for fact in FACTS:
        where = sa.text(f"{fact} IS NULL")
        op.create_index(
            f"ix_item_missing_{fact}", "item", ["created_at", "id"], sqlite_where=where, postgresql_where=where
        )
    late = sa.text(LATE.get(dialect, "late IS true"))
    op.create_index("ix_item_late_created", "item", ["created_at", "id"], sqlite_where=late, postgresql_where=late)
    op.create_index(
        "ix_item_overdue",
        "item",
        ["collector", "dock_id", "captured_at", "id"],
        sqlite_where=late,
        postgresql_where=late,
    )
    op.create_index("ix_itemissue_code_item", "itemissue", ["code", "item_id"])
    op.create_index("ix_case_classification", "case", ["classification", "number"])
    if dialect == "sqlite":
        _sqlite_search()
    elif dialect == "postgresql":
        _postgres_search()


def _sqlite_search() -> None:
    columns = ", ".join(SEARCHED)
    new = ", ".join(f"new.{name}" for name in SEARCHED)
    old = ", ".join(f"old.{name}" for name in SEARCHED)
    op.execute(
        f"CREATE VIRTUAL TABLE item_search USING fts5({columns}, content='item', content_rowid='rowid',"
        " tokenize='trigram')"
    )
    op.execute("INSERT INTO item_search(item_search) VALUES('rebuild')")
    op.execute(
        f"CREATE TRIGGER item_search_insert AFTER INSERT ON item BEGIN"
        f" INSERT INTO item_search(rowid, {columns}) VALUES (new.rowid, {new}); END"
    )
    op.execute(
        f"CREATE TRIGGER item_search_delete AFTER DELETE ON item BEGIN"
        f" INSERT INTO item_search(item_search, rowid, {columns}) VALUES ('delete', old.rowid, {old}); END"
    )
    op.execute(
        f"CREATE TRIGGER item_search_update AFTER UPDATE OF {columns} ON item BEGIN"
        f" INSERT INTO item_search(item_search, rowid, {columns}) VALUES ('delete', old.rowid, {old});"
        f" INSERT INTO item_search(rowid, {columns}) VALUES (new.rowid, {new}); END"
    )


def _postgres_search() -> None:
    """pg_trgm in the ``public`` schema when it can go there (so every schema of the database finds
    it), else in the current one; without it (not installed, no privilege) nothing more is made and
    the search reads the rows as before."""
    bind = op.get_bind()
    for statement in (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ):
        savepoint = bind.begin_nested()
        try:
            bind.execute(sa.text(statement))
        except sa.exc.DBAPIError:
            savepoint.rollback()
            continue
        savepoint.commit()
        break
    schema = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname = 'pg_trgm'"
        )
    ).scalar()
    if schema is None:
        return
    ops = f'"{schema}".gin_trgm_ops'
    for name in SEARCHED:
        op.execute(f"CREATE INDEX ix_item_trgm_{name} ON item USING gin ({name} {ops})")
    op.execute(f'CREATE INDEX ix_case_trgm_target ON "case" USING gin (target {ops})')


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS item_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS item_search")
    elif dialect == "postgresql":
        for name in SEARCHED:
            op.execute(f"DROP INDEX IF EXISTS ix_item_trgm_{name}")
        op.execute("DROP INDEX IF EXISTS ix_case_trgm_target")
    op.drop_index("ix_case_classification", table_name="case")
    op.drop_index("ix_itemissue_code_item", table_name="itemissue")
    op.drop_index("ix_item_overdue", table_name="item")
    op.drop_index("ix_item_late_created", table_name="item")
    for fact in FACTS:
        op.drop_index(f"ix_item_missing_{fact}", table_name="item")
    op.drop_index("ix_item_case_class", table_name="item")
    op.drop_index("ix_item_unclassified", table_name="item")
    op.drop_index("ix_item_collector_captured", table_name="item")
    op.drop_index("ix_item_created_id", table_name="item")
