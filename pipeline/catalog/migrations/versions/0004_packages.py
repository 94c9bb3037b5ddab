"""packages

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = pipeline.catalog.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "package",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("case_number", sa.String(length=100), nullable=False),
        sa.Column("item_ids", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("producer", sa.String(length=255), nullable=False),
        sa.Column("media", sa.String(length=16), nullable=False),
        sa.Column("capacity", BIG, nullable=False),
        sa.Column("with_access_copies", sa.Boolean(), nullable=False),
        sa.Column("out_dir", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("disc_count", sa.Integer(), nullable=True),
        sa.Column("produced_at", UTC, nullable=True),
        sa.Column("completed_at", UTC, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tool", sa.String(length=255), nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("package", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_package_case_number"), ["case_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_package_requested_at"), ["requested_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_package_status"), ["status"], unique=False)

    op.create_table(
        "packagedisc",
        sa.Column("id", BIG, nullable=False),
        sa.Column("package_id", sa.String(length=26), nullable=False),
        sa.Column("disc_index", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", BIG, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verification", sa.JSON(), nullable=False),
        sa.Column("verified_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["package_id"], ["package.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("package_id", "disc_index"),
    )
    with op.batch_alter_table("packagedisc", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packagedisc_package_id"), ["package_id"], unique=False)

    op.create_table(
        "packagefile",
        sa.Column("id", BIG, nullable=False),
        sa.Column("package_id", sa.String(length=26), nullable=False),
        sa.Column("disc_index", sa.Integer(), nullable=False),
        sa.Column("disc_path", sa.Text(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=True),
        sa.Column("size", BIG, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["package_id"], ["package.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("packagefile", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packagefile_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_packagefile_package_id"), ["package_id"], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ("packagefile", ("item_id", "package_id")),
        ("packagedisc", ("package_id",)),
        ("package", ("case_number", "requested_at", "status")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in indexes:
                batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
        op.drop_table(table)
