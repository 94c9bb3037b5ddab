"""catalog at a million items: one PostgreSQL trigram index over the searched columns joined,
instead of one per column

The free-text search (pipeline.catalog.queries.items) looks a text of 3 characters or more up in
``ix_item_trgm_search``, a pg_trgm GIN index over the five searched columns joined by spaces
(``SEARCH_DOCUMENT`` there, written exactly as here), and then tests the columns one by one: one
index read instead of five bitmap scans OR-ed together, and one index to keep current on every
write instead of five. The case targets keep theirs (``ix_case_trgm_target``), a table of their own.
Without pg_trgm (not installed, no privilege) nothing is made, as in 0008. SQLite keeps its FTS5
trigram index (0008), which already holds the five columns in one index.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

SEARCHED = ("original_name", "case_number", "captured_place", "collector", "proof_object")
# pipeline.catalog.queries.items.SEARCH_DOCUMENT, the expression the queries compare.
DOCUMENT = " || ' ' || ".join(f"coalesce(item.{name}, '')" for name in SEARCHED)


def _trgm_schema() -> str | None:
    """The schema pg_trgm is installed in, None without it."""
    return (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                " WHERE e.extname = 'pg_trgm'"
            )
        )
        .scalar()
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = _trgm_schema()
    if schema is None:
        return
    op.execute(
        f'CREATE INDEX IF NOT EXISTS ix_item_trgm_search ON item USING gin (({DOCUMENT}) "{schema}".gin_trgm_ops)'
    )
    for name in SEARCHED:
        op.execute(f"DROP INDEX IF EXISTS ix_item_trgm_{name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    schema = _trgm_schema()
    if schema is None:
        return
    for name in SEARCHED:
        op.execute(f'CREATE INDEX IF NOT EXISTS ix_item_trgm_{name} ON item USING gin ({name} "{schema}".gin_trgm_ops)')
    op.execute("DROP INDEX IF EXISTS ix_item_trgm_search")
