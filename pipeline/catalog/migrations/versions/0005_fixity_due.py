"""index for the scheduled fixity check: items checked (or taken in) longest ago first

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_item_fixity_due", "item", [sa.text("coalesce(fixity_checked_at, created_at)"), "id"])


def downgrade() -> None:
    op.drop_index("ix_item_fixity_due", table_name="item")
