"""Cross-day (跨日) carry-over through the suspense pool across three consecutive days."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from payrecon.config import CsvChannelSettings, MatchSettings, Settings
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.service.runstore import RunStore

DAY1 = date(2026, 11, 18)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)

# order id -> (amount, local time) per day and side
LEDGER = {
    DAY1: [("C", 500, "12:00:00"), ("A", 100, "23:55:00"), ("B", 200, "23:58:00")],
    DAY2: [("D", 300, "00:01:00"), ("E", 700, "12:00:00")],
    DAY3: [("F", 900, "12:00:00")],
}
CHANNEL = {
    DAY1: [("C", 500, "12:00:00"), ("D", 300, "23:57:00")],
    DAY2: [("A", 100, "00:02:00"), ("E", 700, "12:00:00")],
    DAY3: [("F", 900, "12:00:00")],
}


def write_inputs(folder: Path, day: date) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    bill = folder / f"bank_{day:%Y%m%d}.csv"
    rows = [f"{oid},{amount},{day} {at}" for oid, amount, at in CHANNEL[day]]
    bill.write_text("ref,amt,time\n" + "\n".join(rows) + "\n", encoding="utf-8")
    ledger = folder / "ledger.csv"
    rows = [f"{oid},{amount},SUCCESS,{day}T{at}+08:00" for oid, amount, at in LEDGER[day]]
    ledger.write_text("order_id,amount,status,txn_time\n" + "\n".join(rows) + "\n")
    return bill, ledger


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    bank = CsvChannelSettings(
        columns={"order_id": "ref", "amount": "amt", "txn_time": "time"}, amount_unit="minor"
    )
    return Settings(
        home=tmp_path / "home", channels={"bank": bank}, match=MatchSettings(carry_days=1)
    )


def reconcile(tmp_path: Path, settings: Settings, day: date) -> RunResult:
    bill, ledger = write_inputs(tmp_path / "in" / day.isoformat(), day)
    request = ReconcileRequest(
        channel="bank", bills=(bill,), ledger=str(ledger), day=day, out=tmp_path / f"out-{day}"
    )
    return run_reconciliation(request, settings)


def outcomes(result: RunResult) -> dict[str, tuple[str, date | None]]:
    rows = pq.read_table(result.out / "outcomes.parquet").to_pylist()
    return {row["order_id"]: (row["outcome"], row["carried_from"]) for row in rows}


def test_three_days_of_carry_over(tmp_path: Path, settings: Settings) -> None:
    day1 = reconcile(tmp_path, settings, DAY1)
    assert outcomes(day1) == {
        "A": ("CARRIED_OVER", None),
        "B": ("CARRIED_OVER", None),
        "C": ("MATCHED", None),
        "D": ("CARRIED_OVER", None),
    }
    assert day1.clean  # waiting records are not discrepancies yet
    assert day1.summary["pool"]["carried_out"] == 3

    day2 = reconcile(tmp_path, settings, DAY2)
    assert outcomes(day2) == {
        "A": ("MATCHED", DAY1),  # ledger 23:55 on day 1, channel 00:02 on day 2
        "D": ("MATCHED", DAY1),  # channel 23:57 on day 1, ledger 00:01 on day 2
        "E": ("MATCHED", None),
        "B": ("CARRIED_OVER", DAY1),
    }
    assert day2.summary["rows_in"] == {"ledger": 2, "channel": 2, "pool": 3}

    day3 = reconcile(tmp_path, settings, DAY3)
    assert outcomes(day3) == {"F": ("MATCHED", None), "B": ("MISSING_IN_CHANNEL", DAY1)}
    assert not day3.clean
    assert day3.summary["pool"]["carried_out"] == 0


def test_rerunning_a_day_starts_from_the_same_pool(tmp_path: Path, settings: Settings) -> None:
    reconcile(tmp_path, settings, DAY1)
    first = outcomes(reconcile(tmp_path, settings, DAY2))
    reconcile(tmp_path, settings, DAY3)
    assert outcomes(reconcile(tmp_path, settings, DAY2)) == first


def test_pool_snapshots_hold_full_records(tmp_path: Path, settings: Settings) -> None:
    reconcile(tmp_path, settings, DAY1)
    _, pool = RunStore(settings.home).pool_before("bank", DAY2)
    by_order = {row["order_id"]: row for row in pool.to_pylist()}
    assert set(by_order) == {"A", "B", "D"}
    assert by_order["A"]["side"] == "ledger"
    assert by_order["D"]["side"] == "channel"
    assert by_order["B"]["amount"] == 200
    assert by_order["D"]["carried_from"] == DAY1
