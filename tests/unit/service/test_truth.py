"""Generated days with known truth, reconciled end to end: every record lands exactly once."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payrecon.config import Settings
from payrecon.core.outcomes import Outcome
from payrecon.generator import GeneratedDay, generate_day
from payrecon.service.parse import parse_bill
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation

DAY = date(2026, 11, 20)
# A deeper search locally: PAYRECON_PROPERTY_EXAMPLES=200 make unit (150 passed here).
EXAMPLES = int(os.environ.get("PAYRECON_PROPERTY_EXAMPLES", "12"))


def run_day(
    folder: Path, channel: str, rows: int, rate: float, seed: int
) -> tuple[GeneratedDay, RunResult]:
    made = generate_day(channel, DAY, rows, folder / "in", seed=seed, discrepancy_rate=rate)  # type: ignore[arg-type]
    request = ReconcileRequest(
        channel=channel,
        bills=tuple(made.bills),
        ledger=str(made.ledger),
        day=DAY,
        out=folder / "out",
    )
    return made, run_reconciliation(request, Settings(home=folder / "home"))


def outcome_rows(path: Path) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(path, columns=["kind", "order_id", "outcome"])
    return Counter(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def record_lines(outcomes: Path, side: str) -> Counter[tuple[str, int]]:
    table = pq.read_table(outcomes, columns=[f"{side}_source", f"{side}_line_no"])
    pairs = zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True)
    return Counter((source, line) for source, line in pairs if source is not None)


def check_every_record_once(folder: Path, made: GeneratedDay, result: RunResult) -> None:
    outcomes = result.out / "outcomes.parquet"
    ledger_rows = made.ledger.read_text(encoding="utf-8").count("\n") - 1
    ledger = record_lines(outcomes, "ledger")
    assert sorted(ledger) == [(str(made.ledger), n) for n in range(2, ledger_rows + 2)]
    assert max(ledger.values(), default=1) == 1
    bill = made.bills[0]
    parsed = folder / "bill.parquet"
    parse_bill(result.summary["channel"], bill, Settings(home=folder / "home"), out=parsed)
    expected = pq.read_table(parsed, columns=["source", "line_no"]).to_pylist()
    channel = record_lines(outcomes, "channel")
    assert channel == Counter((r["source"], r["line_no"]) for r in expected)


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_reconcile_reproduces_the_generator_truth(tmp_path: Path, channel: str) -> None:
    made, result = run_day(tmp_path, channel, rows=3000, rate=0.05, seed=7)
    assert outcome_rows(result.out / "outcomes.parquet") == outcome_rows(made.truth)
    found = {kind for kind, figures in result.summary["outcomes"].items() if figures["count"]}
    assert found == {o.value for o in Outcome}
    assert result.summary["footer"] == "ok"
    check_every_record_once(tmp_path, made, result)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    channel=st.sampled_from(["wechat", "alipay"]),
    rows=st.integers(min_value=0, max_value=400),
    rate=st.sampled_from([0.0, 0.01, 0.2, 0.9]),
    seed=st.integers(min_value=0, max_value=2**20),
)
def test_every_record_lands_in_exactly_one_outcome(
    channel: str, rows: int, rate: float, seed: int
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        made, result = run_day(folder, channel, rows, rate, seed)
        assert outcome_rows(result.out / "outcomes.parquet") == outcome_rows(made.truth)
        check_every_record_once(folder, made, result)
        summary = result.summary
        counted = sum(figures["count"] for figures in summary["outcomes"].values())
        assert counted == pq.read_metadata(result.out / "outcomes.parquet").num_rows
        assert summary["quarantined"] == 0
