"""Several bills of one channel (one per merchant) reconcile against one ledger."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from payrecon.config import Settings
from payrecon.generator import generate_day
from payrecon.service.reconcile import ReconcileRequest, run_reconciliation

DAY = date(2026, 11, 20)


def keyed(path: Path) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(path, columns=["kind", "order_id", "outcome"])
    return Counter(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


def test_two_merchants_bills_and_one_ledger(tmp_path: Path) -> None:
    first = generate_day("wechat", DAY, 500, tmp_path / "a", seed=1, merchant_id="1601959334")
    second = generate_day("wechat", DAY, 500, tmp_path / "b", seed=2, merchant_id="1601959335")
    truth = keyed(first.truth) + keyed(second.truth)
    ledger = tmp_path / "ledger.csv"
    lines = first.ledger.read_text().splitlines() + second.ledger.read_text().splitlines()[1:]
    ledger.write_text("\n".join(lines) + "\n")
    request = ReconcileRequest(
        "wechat", (first.bills[0], second.bills[0]), str(ledger), DAY, tmp_path / "out"
    )
    result = run_reconciliation(request, Settings(home=tmp_path / "home"))
    assert keyed(result.out / "outcomes.parquet") == truth
    assert [bill["status"] for bill in result.summary["bills"]] == ["ok", "ok"]
    merchants = pq.read_table(result.out / "outcomes.parquet", columns=["merchant_id"])
    assert set(merchants.column(0).to_pylist()) == {"1601959334", "1601959335"}
