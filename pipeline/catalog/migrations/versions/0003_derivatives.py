"""derivatives

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "derivative",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("store_key", sa.Text(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verification", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("created_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "profile", "profile_version"),
    )
    with op.batch_alter_table("derivative", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_derivative_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_derivative_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("derivative", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_derivative_status"))
        batch_op.drop_index(batch_op.f("ix_derivative_item_id"))

    op.drop_table("derivative")
