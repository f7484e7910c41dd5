"""The open case queue: partial indexes on open cases, by due time and by stake.

Only cases someone still has to work (not RESOLVED, CLOSED or PARKED), ordered as the
queue shows them and carrying the columns the queue filters on (PostgreSQL ``INCLUDE``),
so that the queue's capped count and its page of ids are index-only scans. On PostgreSQL
each index is built in one pass that blocks writes to ``cases`` (about a second per
million cases).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_OPEN = "state NOT IN ('RESOLVED', 'CLOSED', 'PARKED')"  # models.OPEN_PREDICATE, frozen here
_CARRIED = ["channel", "outcome", "state", "assignee", "run_day"]


def upgrade() -> None:
    op.create_index(
        "ix_cases_open_due",
        "cases",
        ["due_at", "id"],
        unique=False,
        postgresql_include=[*_CARRIED, "stake"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )
    op.create_index(
        "ix_cases_open_stake",
        "cases",
        ["stake", "id"],
        unique=False,
        postgresql_include=[*_CARRIED, "due_at"],
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE cases")


def downgrade() -> None:
    op.drop_index("ix_cases_open_stake", table_name="cases")
    op.drop_index("ix_cases_open_due", table_name="cases")
