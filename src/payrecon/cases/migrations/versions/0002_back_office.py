"""Back-office: API tokens, and indexes for the case queue's orderings.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Declares the models this revision creates on the shared metadata (autogenerate checks).
import payrecon.web.models  # noqa: F401

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_api_tokens_user", "api_tokens", ["user_name"], unique=False)
    op.create_index("ix_cases_due", "cases", ["due_at", "id"], unique=False)
    op.create_index("ix_cases_stake", "cases", ["stake", "id"], unique=False)
    op.create_index("ix_cases_run_day", "cases", ["run_day", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_cases_run_day", table_name="cases")
    op.drop_index("ix_cases_stake", table_name="cases")
    op.drop_index("ix_cases_due", table_name="cases")
    op.drop_index("ix_api_tokens_user", table_name="api_tokens")
    op.drop_table("api_tokens")
