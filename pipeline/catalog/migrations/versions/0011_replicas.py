"""replicas: each verified stored copy of an original (local, S3), with its key, size, when it was
last verified and what that found

Nothing is back-filled: the copy intake made (in the local store, before this table) is implied by
the item row itself, verified at ``item.created_at`` and at ``item.fixity_checked_at``, until a
stage (archive, fixity) records a row for it (pipeline.catalog.replicas).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UTC = pipeline.catalog.types.UTCDateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "replica",
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("store", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("verified_at", UTC, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "store"),
    )
    with op.batch_alter_table("replica", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replica_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_replica_store"), ["store"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("replica", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replica_store"))
        batch_op.drop_index(batch_op.f("ix_replica_item_id"))
    op.drop_table("replica")
