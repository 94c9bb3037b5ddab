"""uploads: resumable HTTP uploads (tus), and the name a sighting arrived under

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC = pipeline.catalog.types.UTCDateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "upload",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("dock_id", sa.String(length=255), nullable=False),
        sa.Column("length", BIGINT, nullable=False),
        sa.Column("offset", BIGINT, nullable=False),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("original_name_raw", sa.LargeBinary(), nullable=False),
        sa.Column("declared_sha256", sa.String(length=64), nullable=True),
        sa.Column("media_type", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sighting_id", sa.String(length=26), nullable=True),
        sa.Column("item_id", sa.String(length=26), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("completed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.create_index("ix_upload_owner_status", ["owner", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_expires_at"), ["expires_at"], unique=False)

    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.add_column(sa.Column("original_name_raw", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.drop_column("original_name_raw")

    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_expires_at"))
        batch_op.drop_index(batch_op.f("ix_upload_status"))
        batch_op.drop_index("ix_upload_owner_status")

    op.drop_table("upload")
