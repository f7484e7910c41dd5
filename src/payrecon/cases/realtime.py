"""Provisional cases from the real-time matcher, and their confirmation by the T+1 run.

A stream alert (a pay with no receipt in time, a receipt with no pay, differing amounts,
a duplicate) opens a *provisional* case (``source = 'stream'``) so someone can look at
it within seconds. Its fingerprint is the alert's deterministic ``alert_id``, so an alert
repeated after a crash-restart opens nothing new. The next batch run for the channel
settles it: when the batch run matched the order, the provisional case is closed as a
false alarm (the receipt was only late); when the batch run found a discrepancy for the
order, the batch case supersedes it and the provisional one is closed pointing to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from payrecon.cases.audit import AuditWriter
from payrecon.cases.models import Case
from payrecon.cases.service import CaseService
from payrecon.core.cases import CaseFigures
from payrecon.core.outcomes import Outcome
from payrecon.core.stream import StreamOutput
from payrecon.core.workflow import Actor, CaseState

# Alert type -> the batch outcome it foreshadows, and which side is present.
_OUTCOME = {
    "unmatched_pay": (Outcome.MISSING_IN_CHANNEL, "ledger"),
    "unmatched_receipt": (Outcome.MISSING_IN_LEDGER, "channel"),
    "amount_mismatch": (Outcome.AMOUNT_MISMATCH, None),
    "duplicate": (Outcome.DUPLICATE, None),
}


def open_stream_cases(
    service: CaseService,
    alerts: Sequence[StreamOutput],
    *,
    channel: str,
    timezone: str = "Asia/Shanghai",
    currency: str = "CNY",
) -> int:
    """Open a provisional case per alert not seen before; returns how many were opened."""
    wanted = [a for a in alerts if a.type in _OUTCOME]
    if not wanted:
        return 0
    zone = ZoneInfo(timezone)
    now = service.clock()
    with service.store.session() as session:
        known = set(
            session.execute(
                select(Case.fingerprint).where(Case.fingerprint.in_([a.alert_id for a in wanted]))
            ).scalars()
        )
        fresh = []
        for alert in wanted:
            if alert.alert_id in known:
                continue
            known.add(alert.alert_id)
            fresh.append(_row(alert, service, channel, zone, currency, now))
        audit = AuditWriter(session)
        for start in range(0, len(fresh), 1000):
            chunk = fresh[start : start + 1000]
            ids = dict(
                session.execute(insert(Case).returning(Case.fingerprint, Case.id), chunk).all()
            )
            for row in chunk:
                audit.add(
                    "created",
                    Actor.system(),
                    now,
                    case_id=ids[row["fingerprint"]],
                    after={
                        "state": "OPEN",
                        "outcome": row["outcome"],
                        "order_id": row["order_id"],
                        "stake": row["stake"],
                        "severity": row["severity"],
                        "source": "stream",
                        "alert_id": row["fingerprint"],
                    },
                )
        audit.close()
    return len(fresh)


def _moment(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return datetime.fromtimestamp(ts_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _row(
    alert: StreamOutput,
    service: CaseService,
    channel: str,
    zone: ZoneInfo,
    currency: str,
    now: datetime,
) -> dict[str, Any]:
    outcome, side = _OUTCOME[alert.type]
    pay = (
        None
        if alert.pay_ts_ms is None
        else {"amount": alert.pay_amount, "txn_time": _moment(alert.pay_ts_ms), "kind": "PAY"}
    )
    receipt = (
        None
        if alert.receipt_ts_ms is None
        else {
            "amount": alert.receipt_amount,
            "txn_time": _moment(alert.receipt_ts_ms),
            "kind": "PAY",
        }
    )
    diff = None
    if alert.pay_amount is not None and alert.receipt_amount is not None:
        diff = alert.receipt_amount - alert.pay_amount
    figures = CaseFigures(outcome, alert.pay_amount, alert.receipt_amount, diff)
    first = min(t for t in (alert.pay_ts_ms, alert.receipt_ts_ms) if t is not None)
    day = datetime.fromtimestamp(first // 1000, UTC).astimezone(zone).date()
    severity = service.policy.bands.of(figures.stake)
    return {
        "fingerprint": alert.alert_id,
        "source": "stream",
        "channel": channel,
        "merchant_id": None,
        "run_day": day,
        "bill_date": day,
        "kind": "PAY",
        "order_id": alert.order_id,
        "outcome": outcome.value,
        "side": side,
        "diff_fields": "amount" if outcome is Outcome.AMOUNT_MISMATCH else None,
        "amount_diff": diff,
        "ledger_amount": alert.pay_amount,
        "channel_amount": alert.receipt_amount,
        "stake": figures.stake,
        "currency": currency,
        "severity": severity.value,
        "state": CaseState.OPEN.value,
        "assignee": None,
        "due_at": now + timedelta(hours=service.policy.bands.sla_hours[severity]),
        "parked_until": None,
        "opened_by_run": None,
        "last_run": None,
        "closed_reason": None,
        "ledger_record": pay,
        "channel_record": receipt,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


def settle_stream_cases(
    service: CaseService,
    session: Session,
    audit: AuditWriter,
    outcomes: Path,
    *,
    channel: str,
    run_id: str,
    batch_cases: dict[str, int],
) -> int:
    """Close the channel's open provisional cases whose order this batch run saw."""
    done = [s.value for s in CaseState if s.is_done]
    provisional = (
        session.execute(
            select(Case)
            .where(Case.source == "stream", Case.channel == channel, Case.state.not_in(done))
            .with_for_update()
        )
        .scalars()
        .all()
    )
    if not provisional:
        return 0
    wanted = {c.order_id for c in provisional}
    seen: dict[str, str] = {}
    table = pq.read_table(outcomes, columns=["kind", "order_id", "outcome"])
    for kind, order, outcome in zip(
        *(table.column(n).to_pylist() for n in ("kind", "order_id", "outcome")), strict=True
    ):
        if kind == "PAY" and order in wanted and seen.get(order) != Outcome.MATCHED:
            seen[order] = outcome
    settled = 0
    for case in provisional:
        outcome = seen.get(case.order_id)
        if outcome is None or outcome == Outcome.CARRIED_OVER:
            continue
        if outcome == Outcome.MATCHED:
            reason = f"matched by batch run {run_id}: the real-time alert was a late arrival"
        else:
            batch = batch_cases.get(case.order_id)
            where = f" as case {batch}" if batch is not None else ""
            reason = f"confirmed by batch run {run_id}{where} ({outcome})"
        if service.system_close(session, audit, case, reason):
            settled += 1
    return settled
