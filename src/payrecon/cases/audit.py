"""Appending to and checking the audit log (the chain itself is :mod:`payrecon.core.audit`).

Appends are serial: the one ``audit_head`` row is updated with a compare-and-set on its
``seq`` in the same transaction as the entry, so two writers can never both extend the
same head. The database refuses UPDATE and DELETE on ``audit_log`` (triggers created by
the migration); ``payrecon audit verify`` catches what someone with the rights to drop
those triggers could still do.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import closing
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from payrecon.cases.models import AuditEntry, AuditHead
from payrecon.core.audit import Head, Verdict, chain_hash, iso, verify
from payrecon.core.workflow import Actor
from payrecon.errors import ConflictError


class AuditWriter:
    """Appends entries within the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session
        row = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        head = row.scalar_one()
        self._start = head.seq
        self.head = Head(head.seq, head.hash)
        self._pending: list[dict[str, Any]] = []

    def add(
        self,
        event: str,
        actor: Actor,
        at: datetime,
        *,
        case_id: int | None = None,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> Head:
        entry: dict[str, Any] = {
            "seq": self.head.seq + 1,
            "case_id": case_id,
            "event": event,
            "actor": actor.name,
            "actor_kind": actor.kind,
            "at": iso(at),
            "before": dict(before) if before is not None else None,
            "after": dict(after) if after is not None else None,
        }
        entry["prev_hash"] = self.head.hash
        entry["hash"] = chain_hash(self.head.hash, entry)
        self._pending.append(entry)
        self.head = Head(entry["seq"], entry["hash"])
        if len(self._pending) >= 5000:
            self._write()
        return self.head

    def _write(self) -> None:
        if self._pending:
            self.session.execute(insert(AuditEntry), self._pending)
            self._pending = []

    def close(self) -> None:
        """Write what is buffered and move the head (still inside the transaction)."""
        self._write()
        if self.head.seq == self._start:
            return
        moved = self.session.execute(
            update(AuditHead)
            .where(AuditHead.id == 1, AuditHead.seq == self._start)
            .values(seq=self.head.seq, hash=self.head.hash)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("the audit log moved on meanwhile; retry")


def head(session: Session) -> Head:
    row = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one()
    return Head(row.seq, row.hash)


def entries(session: Session, case_id: int | None = None) -> Sequence[AuditEntry]:
    """Entries in order, all of them or one case's."""
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if case_id is not None:
        query = query.where(AuditEntry.case_id == case_id)
    return session.execute(query).scalars().all()


def _stream(session: Session) -> Generator[dict[str, Any], None, None]:
    query = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=10_000)
    result = session.execute(query)
    try:
        for entry in result.scalars():
            yield {
                "seq": entry.seq,
                "case_id": entry.case_id,
                "event": entry.event,
                "actor": entry.actor,
                "actor_kind": entry.actor_kind,
                "at": entry.at,
                "before": entry.before,
                "after": entry.after,
                "prev_hash": entry.prev_hash,
                "hash": entry.hash,
            }
    finally:
        result.close()


def check(session: Session, expect_head: Head | None = None) -> Verdict:
    """Walk the whole chain; also compare the stored head with the last entry."""
    with closing(_stream(session)) as stream:
        verdict = verify(stream, expect_head)
    if not verdict.ok:
        return verdict
    stored = head(session)
    if stored != verdict.head:
        reason = f"the stored head {stored} is not the last entry {verdict.head}"
        return Verdict(verdict.checked, verdict.head, verdict.head.seq + 1, reason)
    return verdict
