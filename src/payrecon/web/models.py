"""The back-office's tables, on the case store's ``Base`` (migration ``0002``).

Importing this module also declares the indexes the case queue sorts by, so that the
models and the migrations stay in step (``tests/unit/cases/test_store.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from payrecon.cases.models import Base, Case, Moment


class ApiToken(Base):
    """A bearer token for a machine client, acting as one user. Only its SHA-256 is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Moment)
    last_used_at: Mapped[datetime | None] = mapped_column(Moment)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# The queue's orderings: walk an index in order and stop after one page.
QUEUE_INDEXES = (
    Index("ix_cases_due", Case.due_at, Case.id),
    Index("ix_cases_stake", Case.stake, Case.id),
    Index("ix_cases_run_day", Case.run_day, Case.id),
)
