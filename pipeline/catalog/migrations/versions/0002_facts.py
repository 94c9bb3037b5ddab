"""facts, cases, issues and deadlines

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case",
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("created_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_target"), ["target"], unique=False)

    op.create_table(
        "itemfact",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("itemfact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_itemfact_item_id"), ["item_id"], unique=False)

    op.create_table(
        "itemissue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("itemissue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_itemissue_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_itemissue_item_id"), ["item_id"], unique=False)

    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_number", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("captured_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("capture_tz", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("captured_place", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("collector", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("proof_object", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("received_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deadline", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("deadline_provisional", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("working_days_late", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("review_status", sa.String(length=32), server_default="pending-review", nullable=False)
        )
        batch_op.add_column(
            sa.Column("classification", sa.String(length=32), server_default="unclassified", nullable=False)
        )
        batch_op.add_column(sa.Column("media", sa.JSON(), server_default="{}", nullable=False))
        batch_op.create_index(batch_op.f("ix_item_captured_at"), ["captured_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_case_number"), ["case_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_collector"), ["collector"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_late"), ["late"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_late"))
        batch_op.drop_index(batch_op.f("ix_item_collector"))
        batch_op.drop_index(batch_op.f("ix_item_case_number"))
        batch_op.drop_index(batch_op.f("ix_item_captured_at"))
        batch_op.drop_column("media")
        batch_op.drop_column("classification")
        batch_op.drop_column("review_status")
        batch_op.drop_column("working_days_late")
        batch_op.drop_column("late")
        batch_op.drop_column("deadline_provisional")
        batch_op.drop_column("deadline")
        batch_op.drop_column("received_at")
        batch_op.drop_column("proof_object")
        batch_op.drop_column("collector")
        batch_op.drop_column("captured_place")
        batch_op.drop_column("capture_tz")
        batch_op.drop_column("captured_at")
        batch_op.drop_column("case_number")

    with op.batch_alter_table("itemissue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_itemissue_item_id"))
        batch_op.drop_index(batch_op.f("ix_itemissue_code"))

    op.drop_table("itemissue")
    with op.batch_alter_table("itemfact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_itemfact_item_id"))

    op.drop_table("itemfact")
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_target"))

    op.drop_table("case")
