"""Opening cases from a run: one case per discrepancy, idempotent across re-runs.

A run for channel C and day D owns the cases with that channel and ``run_day``. Each
discrepancy row has a fingerprint (channel, day, kind, order id, outcome, side, and for
duplicates the record itself), so a re-run finds the same cases again:

* a new fingerprint opens a case (OPEN; severity from the money at stake; due date from
  the severity's SLA), and automatic rules may then propose an action on it;
* a known fingerprint leaves its case alone (its history is kept); a case that the system
  had closed is reopened, since the discrepancy is back;
* a case of C/D whose fingerprint is gone (a corrected bill, a fixed ledger) is closed by
  the system with that reason — unless an approved action is in flight (noted instead).

Provisional cases the real-time matcher opened for channel C are settled by the run
(:mod:`payrecon.cases.realtime`). Parked cases (挂账) of channel C are re-checked by every
later run: a parked record that this run matched closes its case; one whose
``parked_until`` has passed is reopened.
CARRIED_OVER rows open nothing: they wait in the suspense pool, and become MISSING_* (and
so a case) only when they age past T+N.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from payrecon.cases.audit import AuditWriter
from payrecon.cases.models import Case
from payrecon.cases.realtime import settle_stream_cases
from payrecon.cases.service import CaseService, case_row
from payrecon.core.cases import CaseFigures, RuleFacts
from payrecon.core.outcomes import DISCREPANCIES, Outcome
from payrecon.core.workflow import Actor, CaseState
from payrecon.errors import PayreconError

_BATCH = 5000


@dataclass
class SyncReport:
    """What a run did to the case store."""

    opened: int = 0
    unchanged: int = 0
    reopened: int = 0
    closed: int = 0
    close_deferred: int = 0
    parked_closed: int = 0
    parked_reopened: int = 0
    stream_settled: int = 0
    proposed: Counter[str] = field(default_factory=Counter)
    rule_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "unchanged": self.unchanged,
            "reopened": self.reopened,
            "closed": self.closed,
            "close_deferred": self.close_deferred,
            "parked_closed": self.parked_closed,
            "parked_reopened": self.parked_reopened,
            "stream_settled": self.stream_settled,
            "proposed_by_rules": dict(self.proposed),
            "rule_errors": self.rule_errors,
        }


def open_cases(
    service: CaseService, outcomes: Path, *, run_id: str, channel: str, day: date
) -> SyncReport:
    """Bring the case store in line with one run's ``outcomes.parquet``."""
    report = SyncReport()
    now = service.clock()
    new_cases: list[int] = []
    with service.store.session() as session:
        audit = AuditWriter(session)
        known = _known(session, channel, day)
        seen: set[str] = set()
        fresh: list[dict[str, Any]] = []
        for row in _discrepancies(outcomes, channel, day):
            seen.add(row["fingerprint"])
            existing = known.get(row["fingerprint"])
            if existing is None:
                fresh.append(_new_case(row, service, run_id, day, now))
                continue
            case = session.get(Case, existing)
            assert case is not None
            case.last_run = run_id
            if case.state == CaseState.CLOSED:
                service.system_reopen(session, audit, case, f"found again by run {run_id}")
                report.reopened += 1
            else:
                report.unchanged += 1
        new_cases = _insert(session, audit, fresh, now)
        report.opened = len(new_cases)
        for fingerprint, case_id in known.items():
            if fingerprint in seen:
                continue
            case = session.get(Case, case_id, with_for_update=True)
            assert case is not None
            if case.state in (CaseState.CLOSED, CaseState.RESOLVED):
                continue
            reason = f"no longer found by run {run_id}"
            if service.system_close(session, audit, case, reason):
                report.closed += 1
            else:
                report.close_deferred += 1
        _recheck_parked(service, session, audit, outcomes, channel, day, run_id, report)
        report.stream_settled = settle_stream_cases(
            service,
            session,
            audit,
            outcomes,
            channel=channel,
            run_id=run_id,
            batch_cases=_batch_cases(session, channel, day),
        )
        audit.close()
    _apply_rules(service, new_cases, report)
    return report


def _batch_cases(session: Session, channel: str, day: date) -> dict[str, int]:
    rows = session.execute(
        select(Case.order_id, Case.id).where(
            Case.channel == channel, Case.run_day == day, Case.source == "batch"
        )
    )
    return {order: case_id for order, case_id in rows.all()}  # noqa: C416


def _known(session: Session, channel: str, day: date) -> dict[str, int]:
    rows = session.execute(
        select(Case.fingerprint, Case.id).where(
            Case.channel == channel, Case.run_day == day, Case.source == "batch"
        )
    )
    return {fingerprint: case_id for fingerprint, case_id in rows.all()}  # noqa: C416


def _discrepancies(outcomes: Path, channel: str, day: date) -> Iterator[dict[str, Any]]:
    """Discrepancy rows as JSON-friendly dicts, each with its fingerprint."""
    wanted = pa.array([o.value for o in DISCREPANCIES])
    occurrences: Counter[str] = Counter()
    for batch in pq.ParquetFile(outcomes).iter_batches(batch_size=_BATCH):
        picked = batch.filter(pc.is_in(batch.column("outcome"), value_set=wanted))
        for row in picked.to_pylist():
            base = _identity(row, channel, day)
            occurrences[base] += 1
            row["fingerprint"] = hashlib.sha256(f"{base}|{occurrences[base]}".encode()).hexdigest()
            yield row


def _identity(row: dict[str, Any], channel: str, day: date) -> str:
    parts = [
        channel,
        day.isoformat(),
        row["kind"],
        row["order_id"],
        row["outcome"],
        row.get("side") or "",
    ]
    if row["outcome"] == Outcome.DUPLICATE:
        side = row.get("side") or "channel"
        parts += [
            str(row.get(f"{side}_{name}"))
            for name in ("channel_txn_id", "amount", "txn_time", "status")
        ]
    return "|".join(parts)


def _record(row: dict[str, Any], side: str) -> dict[str, Any] | None:
    prefix = f"{side}_"
    record = {k[len(prefix) :]: _plain(v) for k, v in row.items() if k.startswith(prefix)}
    return record if any(v is not None for v in record.values()) else None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _new_case(
    row: dict[str, Any], service: CaseService, run_id: str, day: date, now: datetime
) -> dict[str, Any]:
    ledger, channel_record = _record(row, "ledger"), _record(row, "channel")
    outcome = Outcome(row["outcome"])
    figures = CaseFigures(
        outcome=outcome,
        ledger_amount=None if ledger is None else ledger.get("amount"),
        channel_amount=None if channel_record is None else channel_record.get("amount"),
        amount_diff=row.get("amount_diff"),
        ledger_fee=None if ledger is None else ledger.get("fee"),
        channel_fee=None if channel_record is None else channel_record.get("fee"),
    )
    bands = service.policy.bands
    severity = bands.of(figures.stake)
    present = channel_record or ledger or {}
    return {
        "fingerprint": row["fingerprint"],
        "source": "batch",
        "channel": row["channel"],
        "merchant_id": row.get("merchant_id") or present.get("merchant_id"),
        "run_day": day,
        "bill_date": row.get("bill_date"),
        "kind": row["kind"],
        "order_id": row["order_id"],
        "outcome": outcome.value,
        "side": row.get("side"),
        "diff_fields": row.get("diff_fields") or None,
        "amount_diff": row.get("amount_diff"),
        "ledger_amount": figures.ledger_amount,
        "channel_amount": figures.channel_amount,
        "stake": figures.stake,
        "currency": present.get("currency") or "CNY",
        "severity": severity.value,
        "state": CaseState.OPEN.value,
        "assignee": None,
        "due_at": now + timedelta(hours=bands.sla_hours[severity]),
        "parked_until": None,
        "opened_by_run": run_id,
        "last_run": run_id,
        "closed_reason": None,
        "ledger_record": ledger,
        "channel_record": channel_record,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


def _insert(
    session: Session, audit: AuditWriter, fresh: list[dict[str, Any]], now: datetime
) -> list[int]:
    """Insert new cases in batches and log each one's creation."""
    ids: list[int] = []
    system = Actor.system()
    for start in range(0, len(fresh), _BATCH):
        chunk = fresh[start : start + _BATCH]
        inserted = session.execute(
            insert(Case).returning(Case.id, Case.fingerprint),
            chunk,
        )
        by_fingerprint = {fp: case_id for case_id, fp in inserted}
        for row in chunk:
            case_id = by_fingerprint[row["fingerprint"]]
            ids.append(case_id)
            after = {
                "state": CaseState.OPEN.value,
                "outcome": row["outcome"],
                "order_id": row["order_id"],
                "stake": row["stake"],
                "severity": row["severity"],
                "run": row["opened_by_run"],
            }
            audit.add("created", system, now, case_id=case_id, after=after)
    return ids


def _recheck_parked(
    service: CaseService,
    session: Session,
    audit: AuditWriter,
    outcomes: Path,
    channel: str,
    day: date,
    run_id: str,
    report: SyncReport,
) -> None:
    parked = (
        session.execute(
            select(Case)
            .where(Case.channel == channel, Case.state == CaseState.PARKED.value)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if not parked:
        return
    keys = {(c.kind, c.order_id) for c in parked}
    matched = _matched_keys(outcomes, keys)
    for case in parked:
        if (case.kind, case.order_id) in matched:
            service.system_close(session, audit, case, f"matched by run {run_id} ({day})")
            report.parked_closed += 1
        elif case.parked_until is not None and case.parked_until <= day:
            service.system_reopen(
                session, audit, case, f"parked until {case.parked_until}; still unresolved"
            )
            report.parked_reopened += 1


def _matched_keys(outcomes: Path, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    orders = pa.array(sorted({order for _, order in keys}))
    found: set[tuple[str, str]] = set()
    table = pq.read_table(
        outcomes,
        columns=["kind", "order_id", "outcome"],
        filters=[("outcome", "=", Outcome.MATCHED.value)],
    )
    table = table.filter(pc.is_in(table.column("order_id"), value_set=orders))
    for kind, order in zip(
        table.column("kind").to_pylist(), table.column("order_id").to_pylist(), strict=True
    ):
        if (kind, order) in keys:
            found.add((kind, order))
    return found


def _apply_rules(service: CaseService, case_ids: list[int], report: SyncReport) -> None:
    """Let automatic rules propose actions on the new cases (each its own transaction)."""
    rules = service.policy.rules
    if not rules or not case_ids:
        return
    for start in range(0, len(case_ids), _BATCH):
        chunk = case_ids[start : start + _BATCH]
        with service.store.session() as session:
            cases = session.execute(select(Case).where(Case.id.in_(chunk))).scalars().all()
            facts = [(c.id, _rule_facts(c)) for c in cases]
        for case_id, fact in facts:
            rule = next((r for r in rules if r.applies(fact)), None)
            if rule is None:
                continue
            try:
                service.propose(case_id, Actor.rule(rule.name), rule.propose, reason=rule.reason)
            except PayreconError as exc:
                report.rule_errors.append(f"case {case_id}: rule {rule.name}: {exc}")
            else:
                report.proposed[rule.name] += 1


def _rule_facts(case: Case) -> RuleFacts:
    row = case_row(case)
    return RuleFacts(
        outcome=Outcome(row["outcome"]),
        channel=case.channel,
        ledger_status=(case.ledger_record or {}).get("status"),
        channel_status=(case.channel_record or {}).get("status"),
        stake=case.stake,
    )
