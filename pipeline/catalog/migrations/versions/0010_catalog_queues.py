"""catalog queues at a million items: the unclassified queue counted from an index of its own

The unclassified review queue holds the items whose own class is ``unclassified`` and whose case,
if any, is of no other class (pipeline.catalog.queries.items). Its count read every unclassified
item's row for its case number (PostgreSQL read the table, its estimate of how many rows pass
being far off); ``ix_item_unclassified_case`` holds the case number and class of the unclassified
items alone, so the count reads that index and no row. The page keeps ``ix_item_unclassified``
(0008), in listing order. On SQLite the index is analysed when the catalog's statistics were.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    unclassified = sa.text("classification = 'unclassified'")
    op.create_index(
        "ix_item_unclassified_case",
        "item",
        ["case_number", "classification"],
        sqlite_where=unclassified,
        postgresql_where=unclassified,
    )
    bind = op.get_bind()
    if (
        bind.dialect.name == "sqlite"
        and bind.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
    ):
        # A catalog whose statistics were gathered gets the new index's too: without them SQLite
        # keeps to the listing-order index it has figures for, and reads the rows.
        op.execute("ANALYZE ix_item_unclassified_case")


def downgrade() -> None:
    op.drop_index("ix_item_unclassified_case", table_name="item")
