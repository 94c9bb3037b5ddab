"""initial catalog: docks, items, sightings, stage runs, custody log, fixity

Revision ID: 0001
Revises:
Create Date: 2026-11-26 13:02:49.692016
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custodyevent",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("hash"),
        sa.UniqueConstraint("prev_hash"),
    )
    with op.batch_alter_table("custodyevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_custodyevent_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_custodyevent_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_custodyevent_target"), ["target"], unique=False)

    op.create_table(
        "dock",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("created_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "item",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("original_name_raw", sa.LargeBinary(), nullable=False),
        sa.Column("media_kind", sa.String(length=16), nullable=False),
        sa.Column("dock_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fixity_status", sa.String(length=16), nullable=True),
        sa.Column("fixity_checked_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dock_id"],
            ["dock.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_dock_id"), ["dock_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_sha256"), ["sha256"], unique=True)
        batch_op.create_index(batch_op.f("ix_item_status"), ["status"], unique=False)

    op.create_table(
        "fixitycheck",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("checked_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("found_sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fixitycheck", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fixitycheck_item_id"), ["item_id"], unique=False)

    op.create_table(
        "sighting",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("dock_id", sa.String(length=255), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("source_path_raw", sa.LargeBinary(), nullable=False),
        sa.Column("path_key", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=False),
        sa.Column("disposed_path", sa.Text(), nullable=True),
        sa.Column("disposed_path_raw", sa.LargeBinary(), nullable=True),
        sa.Column("source_policy", sa.String(length=8), nullable=False),
        sa.Column("active_key", sa.String(length=64), nullable=True),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_until", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("queued_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dock_id"],
            ["dock.id"],
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_key"),
    )
    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sighting_disposition"), ["disposition"], unique=False)
        batch_op.create_index(batch_op.f("ix_sighting_dock_id"), ["dock_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sighting_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sighting_path_key"), ["path_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_sighting_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sighting_status"), ["status"], unique=False)

    op.create_table(
        "stagerun",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("updated_at", pipeline.catalog.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id", "stage"),
    )
    with op.batch_alter_table("stagerun", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stagerun_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_stagerun_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stagerun", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stagerun_status"))
        batch_op.drop_index(batch_op.f("ix_stagerun_item_id"))

    op.drop_table("stagerun")
    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sighting_status"))
        batch_op.drop_index(batch_op.f("ix_sighting_received_at"))
        batch_op.drop_index(batch_op.f("ix_sighting_path_key"))
        batch_op.drop_index(batch_op.f("ix_sighting_item_id"))
        batch_op.drop_index(batch_op.f("ix_sighting_dock_id"))
        batch_op.drop_index(batch_op.f("ix_sighting_disposition"))

    op.drop_table("sighting")
    with op.batch_alter_table("fixitycheck", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fixitycheck_item_id"))

    op.drop_table("fixitycheck")
    with op.batch_alter_table("item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_status"))
        batch_op.drop_index(batch_op.f("ix_item_sha256"))
        batch_op.drop_index(batch_op.f("ix_item_dock_id"))
        batch_op.drop_index(batch_op.f("ix_item_created_at"))

    op.drop_table("item")
    op.drop_table("dock")
    with op.batch_alter_table("custodyevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custodyevent_target"))
        batch_op.drop_index(batch_op.f("ix_custodyevent_at"))
        batch_op.drop_index(batch_op.f("ix_custodyevent_action"))

    op.drop_table("custodyevent")
