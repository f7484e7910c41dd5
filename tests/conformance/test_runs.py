"""Whole runs (parse, load, match, summary, pool) on every engine: the same outputs.

A generated day in each channel's real bill format, and three consecutive days whose
records cross the day boundaries, wait in the suspense pool and age out past T+N.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payrecon.config import CsvChannelSettings, EngineSettings, MatchSettings, Settings
from payrecon.core.outcomes import OUTCOMES, POOL
from payrecon.generator import GeneratedDay, generate_day
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.service.runstore import RunStore
from tests.conformance.conftest import REFERENCE, sorted_outcomes

DAY = date(2026, 11, 20)
ROWS = 400
# Differ between runs by nature; everything else in summary.json must be identical.
RUN_SPECIFIC = ("run_id", "seconds", "engine")

Reference = dict[str, list[RunResult]]


@pytest.fixture(scope="module")
def reference() -> Reference:
    """The reference engine's runs, made once per input and shared by every engine's test."""
    return {}


def run(
    engine: str, folder: Path, request: ReconcileRequest, match: MatchSettings | None = None
) -> RunResult:
    settings = Settings(
        home=folder / "home",
        engine=EngineSettings(name=engine),  # type: ignore[arg-type]
        match=match or MatchSettings(),
        channels={"bank": BANK},
    )
    return run_reconciliation(request, settings)


def summary(result: RunResult) -> dict[str, Any]:
    written = json.loads((result.out / "summary.json").read_text(encoding="utf-8"))
    assert written["engine"] == result.summary["engine"]
    return {key: value for key, value in written.items() if key not in RUN_SPECIFIC}


def assert_same_outputs(actual: RunResult, expected: RunResult) -> None:
    """outcomes.parquet, summary.json, discrepancies.csv and the pool left behind."""
    outcomes = sorted_outcomes(actual.out / "outcomes.parquet")
    assert outcomes.schema == OUTCOMES
    assert outcomes.to_pylist() == sorted_outcomes(expected.out / "outcomes.parquet").to_pylist()
    pool = pool_after(actual)
    assert pool.schema == POOL
    assert pool.to_pylist() == pool_after(expected).to_pylist()
    assert summary(actual) == summary(expected)
    assert sorted(lines(actual.out / "discrepancies.csv")) == sorted(
        lines(expected.out / "discrepancies.csv")
    )


def pool_after(result: RunResult) -> pa.Table:
    """The suspense pool the run left for the next day (runs keep home beside out)."""
    day = date.fromisoformat(result.summary["date"]) + timedelta(days=1)
    store = RunStore(result.out.parent / "home")
    _, pool = store.pool_before(result.summary["channel"], day)
    return pool.sort_by([(c, "ascending") for c in ("side", "kind", "order_id", "line_no")])


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def truth_rows(path: Path) -> Counter[tuple[str, str, str]]:
    table = pq.read_table(path, columns=["kind", "order_id", "outcome"])
    return Counter(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))


# -- a generated day ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=["wechat", "alipay"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    channel = str(request.param)
    folder = tmp_path_factory.mktemp(f"generated-{channel}")
    return channel, generate_day(channel, DAY, ROWS, folder, seed=7, discrepancy_rate=0.15)  # type: ignore[arg-type]


def reconcile_generated(engine: str, folder: Path, channel: str, made: GeneratedDay) -> RunResult:
    request = ReconcileRequest(
        channel=channel,
        bills=tuple(made.bills),
        ledger=str(made.ledger),
        day=DAY,
        out=folder / "out",
        cases=False,
    )
    return run(engine, folder, request)


def test_a_generated_day_gives_the_same_outputs(
    engine: str, generated: Any, reference: Reference, tmp_path: Path
) -> None:
    channel, made = generated
    result = reconcile_generated(engine, tmp_path / engine, channel, made)
    assert result.summary["engine"] == engine
    assert truth_rows(result.out / "outcomes.parquet") == truth_rows(made.truth)
    key = f"generated-{channel}"
    if key not in reference:
        reference[key] = [
            result
            if engine == REFERENCE
            else reconcile_generated(REFERENCE, tmp_path / REFERENCE, channel, made)
        ]
    assert_same_outputs(result, reference[key][0])


# -- three days through the suspense pool ---------------------------------------------------

DAY1 = date(2026, 11, 18)
DAYS = [DAY1 + timedelta(days=n) for n in range(3)]
BANK = CsvChannelSettings(
    columns={"order_id": "ref", "amount": "amt", "txn_time": "time"}, amount_unit="minor"
)
# (order id, amount, local time) per day and side; carry_days = 1 (T+1).
LEDGER = {
    DAYS[0]: [("C", 500, "12:00:00"), ("A", 100, "23:55:00"), ("B", 200, "23:58:00")],
    DAYS[1]: [("D", 300, "00:01:00"), ("E", 700, "12:00:00"), ("H", 900, "23:56:00")],
    DAYS[2]: [("F", 900, "12:00:00")],
}
CHANNEL = {
    DAYS[0]: [("C", 500, "12:00:00"), ("D", 300, "23:57:00"), ("G", 400, "23:59:00")],
    DAYS[1]: [("A", 100, "00:02:00"), ("E", 710, "12:00:00")],
    DAYS[2]: [("F", 900, "12:00:00"), ("H", 900, "00:03:00")],
}
EXPECTED = {
    DAYS[0]: {"A": "CARRIED_OVER", "B": "CARRIED_OVER", "C": "MATCHED", "D": "CARRIED_OVER"}
    | {"G": "CARRIED_OVER"},
    DAYS[1]: {"A": "MATCHED", "B": "CARRIED_OVER", "D": "MATCHED", "E": "AMOUNT_MISMATCH"}
    | {"G": "CARRIED_OVER", "H": "CARRIED_OVER"},
    # B and G were first seen on day 1: past T+1 on day 3 they become discrepancies.
    DAYS[2]: {"B": "MISSING_IN_CHANNEL", "F": "MATCHED", "G": "MISSING_IN_LEDGER"}
    | {"H": "MATCHED"},
}


@pytest.fixture(scope="module")
def three_day_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bill and one ledger CSV per day; every engine reads the same files."""
    inputs = tmp_path_factory.mktemp("three-days")
    for day in DAYS:
        folder = inputs / day.isoformat()
        folder.mkdir()
        rows = [f"{oid},{amount},{day} {at}" for oid, amount, at in CHANNEL[day]]
        (folder / "bill.csv").write_text("ref,amt,time\n" + "\n".join(rows) + "\n")
        rows = [f"{oid},{amount},SUCCESS,{day}T{at}+08:00" for oid, amount, at in LEDGER[day]]
        (folder / "ledger.csv").write_text(
            "order_id,amount,status,txn_time\n" + "\n".join(rows) + "\n"
        )
    return inputs


def three_days(engine: str, inputs: Path, folder: Path) -> list[RunResult]:
    results = []
    for day in DAYS:
        request = ReconcileRequest(
            channel="bank",
            bills=(inputs / day.isoformat() / "bill.csv",),
            ledger=str(inputs / day.isoformat() / "ledger.csv"),
            day=day,
            out=folder / day.isoformat(),
            cases=False,
        )
        results.append(run(engine, folder, request, MatchSettings(carry_days=1)))
    return results


def test_three_days_through_the_pool_give_the_same_outputs(
    engine: str, three_day_inputs: Path, reference: Reference, tmp_path: Path
) -> None:
    results = three_days(engine, three_day_inputs, tmp_path / engine)
    for day, result in zip(DAYS, results, strict=True):
        rows = pq.read_table(result.out / "outcomes.parquet").to_pylist()
        assert {r["order_id"]: r["outcome"] for r in rows} == EXPECTED[day], day
    if "three-days" not in reference:
        reference["three-days"] = (
            results
            if engine == REFERENCE
            else three_days(REFERENCE, three_day_inputs, tmp_path / REFERENCE)
        )
    for result, wanted in zip(results, reference["three-days"], strict=True):
        assert_same_outputs(result, wanted)
