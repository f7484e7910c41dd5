"""Tables of the case store (SQLAlchemy 2). Alembic migrations create them; keep in step.

``tests/unit/cases/test_store.py`` proves the migrations and these models agree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JsonType = JSON().with_variant(JSONB(), "postgresql")
# Cases nobody has to work on any more (``CaseState.is_done``), as literal SQL: the open
# queue's partial indexes are defined by it, and queries must say the same to use them.
DONE_STATES = ("RESOLVED", "CLOSED", "PARKED")
OPEN_PREDICATE = "state NOT IN ('RESOLVED', 'CLOSED', 'PARKED')"
OPEN_QUEUE_INCLUDE = ["channel", "outcome", "state", "assignee", "run_day"]
Moment = DateTime(timezone=True)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # set by the back-office
    created_at: Mapped[datetime] = mapped_column(Moment)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("fingerprint", name="uq_cases_fingerprint"),
        Index("ix_cases_scope", "channel", "run_day", "state"),
        Index("ix_cases_queue", "state", "due_at"),
        Index("ix_cases_assignee", "assignee", "state"),
        Index("ix_cases_order", "order_id"),
        # The open queue (migration 0003): only cases someone still has to work, in the
        # queue's two main orders, carrying the filtered columns so that the capped count
        # and the page's ids come from the index alone. The predicate must stay equal to
        # ``still_open()`` in ``payrecon.cases.service`` for the planner to use them.
        Index(
            "ix_cases_open_due",
            "due_at",
            "id",
            postgresql_include=[*OPEN_QUEUE_INCLUDE, "stake"],
            postgresql_where=text(OPEN_PREDICATE),
            sqlite_where=text(OPEN_PREDICATE),
        ),
        Index(
            "ix_cases_open_stake",
            "stake",
            "id",
            postgresql_include=[*OPEN_QUEUE_INCLUDE, "due_at"],
            postgresql_where=text(OPEN_PREDICATE),
            sqlite_where=text(OPEN_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The discrepancy's identity: a re-run of the same channel and day finds it again.
    fingerprint: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="batch")  # batch | stream
    channel: Mapped[str] = mapped_column(String(32))
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    run_day: Mapped[date] = mapped_column(Date)  # the accounting day of the run that found it
    bill_date: Mapped[date | None] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(32))
    side: Mapped[str | None] = mapped_column(String(16))
    diff_fields: Mapped[str | None] = mapped_column(String(200))
    amount_diff: Mapped[int | None] = mapped_column(BigInteger)
    ledger_amount: Mapped[int | None] = mapped_column(BigInteger)
    channel_amount: Mapped[int | None] = mapped_column(BigInteger)
    stake: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24))
    assignee: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(Moment)
    parked_until: Mapped[date | None] = mapped_column(Date)
    opened_by_run: Mapped[str | None] = mapped_column(String(64))
    last_run: Mapped[str | None] = mapped_column(String(64))
    closed_reason: Mapped[str | None] = mapped_column(Text)
    # Both sides' records as the run saw them (JSON: ints, strings, ISO times).
    ledger_record: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    channel_record: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)
    # Optimistic locking: every UPDATE is ``… WHERE id = ? AND version = ?`` (the service
    # raises the number itself), so a write based on a stale read changes nothing and
    # fails instead of silently overwriting the newer state.
    version: Mapped[int] = mapped_column(Integer, default=1)
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}  # noqa: RUF012


class Action(Base):
    __tablename__ = "case_actions"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_case_actions_idempotency_key"),
        Index("ix_case_actions_case", "case_id"),
        Index("ix_case_actions_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    park_days: Mapped[int | None] = mapped_column(Integer)
    proposed_by: Mapped[str] = mapped_column(String(80))
    proposed_at: Mapped[datetime] = mapped_column(Moment)
    reviewed_by: Mapped[str | None] = mapped_column(String(80))
    reviewed_at: Mapped[datetime | None] = mapped_column(Moment)
    review_note: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(String(80))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    executing_since: Mapped[datetime | None] = mapped_column(Moment)  # a lease, not a lock
    executed_at: Mapped[datetime | None] = mapped_column(Moment)
    response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class Comment(Base):
    __tablename__ = "case_comments"
    __table_args__ = (Index("ix_case_comments_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    author: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Moment)


class Attachment(Base):
    """A file attached by reference (a URI into the operator's document store)."""

    __tablename__ = "case_attachments"
    __table_args__ = (Index("ix_case_attachments_case", "case_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    author: Mapped[str] = mapped_column(String(80))
    uri: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Moment)


class AuditEntry(Base):
    """Append-only (a database trigger refuses UPDATE and DELETE); hash-chained."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_case", "case_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    case_id: Mapped[int | None] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(80))
    actor_kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[str] = mapped_column(String(40))  # ISO-8601 UTC, exactly as hashed
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the newest audit entry. Locked while appending, so the chain is serial."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
