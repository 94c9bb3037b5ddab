"""people: accounts, tokens, sessions, case members, supervised access; case class

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

import pipeline.catalog.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC = pipeline.catalog.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("dock_id", sa.String(length=255), nullable=True),
        sa.Column("clearances", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_name"), ["name"], unique=True)
        batch_op.create_index(batch_op.f("ix_api_token_prefix"), ["prefix"], unique=True)

    op.create_table(
        "login_attempt",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("client", sa.String(length=255), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempt_client_at", ["client", "at"], unique=False)
        batch_op.create_index("ix_login_attempt_name_at", ["name", "at"], unique=False)

    op.create_table(
        "user_account",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("clearances", sa.JSON(), nullable=False),
        sa.Column("approver", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("dock_id", sa.String(length=255), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", UTC, nullable=True),
        sa.Column("password_changed_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_account_name"), ["name"], unique=True)

    op.create_table(
        "case_member",
        sa.Column("case_number", sa.String(length=100), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("assigned_by", sa.String(length=255), nullable=False),
        sa.Column("assigned_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["case_number"],
            ["case.number"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("case_number", "user_id"),
    )
    with op.batch_alter_table("case_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_member_user_id"), ["user_id"], unique=False)

    op.create_table(
        "web_session",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=255), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("last_seen_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "access_request",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("requester_id", sa.String(length=26), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=True),
        sa.Column("case_number", sa.String(length=100), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", UTC, nullable=False),
        sa.Column("decided_by", sa.String(length=26), nullable=True),
        sa.Column("decided_at", UTC, nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("valid_from", UTC, nullable=True),
        sa.Column("valid_until", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_request_case_number"), ["case_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_request_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_request_requester_id"), ["requester_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_request_status"), ["status"], unique=False)

    op.create_table(
        "stated_purpose",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("item_id", sa.String(length=26), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stated_purpose", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stated_purpose_item_id"), ["item_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_stated_purpose_session_id"), ["session_id"], unique=False)

    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.add_column(sa.Column("classification", sa.String(length=32), server_default="none", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("case", schema=None) as batch_op:
        batch_op.drop_column("classification")

    with op.batch_alter_table("stated_purpose", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stated_purpose_session_id"))
        batch_op.drop_index(batch_op.f("ix_stated_purpose_item_id"))

    op.drop_table("stated_purpose")
    with op.batch_alter_table("access_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_request_status"))
        batch_op.drop_index(batch_op.f("ix_access_request_requester_id"))
        batch_op.drop_index(batch_op.f("ix_access_request_item_id"))
        batch_op.drop_index(batch_op.f("ix_access_request_case_number"))

    op.drop_table("access_request")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_user_id"))
        batch_op.drop_index(batch_op.f("ix_web_session_expires_at"))

    op.drop_table("web_session")
    with op.batch_alter_table("case_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_member_user_id"))

    op.drop_table("case_member")
    with op.batch_alter_table("user_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_account_name"))

    op.drop_table("user_account")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_name_at")
        batch_op.drop_index("ix_login_attempt_client_at")

    op.drop_table("login_attempt")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_prefix"))
        batch_op.drop_index(batch_op.f("ix_api_token_name"))

    op.drop_table("api_token")
