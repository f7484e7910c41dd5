"""What only the Spark engine has: one application per process, isolated runs, the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payrecon.cli import main
from payrecon.config import EngineSettings
from payrecon.core.outcomes import POOL
from payrecon.core.rules import MatchRules
from payrecon.core.schema import CANONICAL
from payrecon.engines.definition import MatchDefinition
from payrecon.engines.spark import SparkEngine, open_session
from payrecon.errors import ConfigError, RunError
from payrecon.generator import generate_day
from tests.conftest import DAY, record

pytestmark = [pytest.mark.spark, pytest.mark.usefixtures("spark_application")]


def table(*records: dict[str, Any]) -> pa.RecordBatchReader:
    return pa.Table.from_pylist(list(records), CANONICAL).to_reader()


def test_one_process_holds_one_spark_application(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"already runs Spark on local\[2\]"):
        open_session(EngineSettings(spark_master="local[3]"), tmp_path)


def test_a_failing_query_is_a_run_error(tmp_path: Path) -> None:
    with SparkEngine(EngineSettings(), tmp_path / "work") as engine:
        engine.load("ledger", table(record("a")))
        (tmp_path / "work" / "ledger.parquet").write_bytes(b"not parquet at all")
        with pytest.raises(RunError, match="the match failed in Spark"):
            engine.match(MatchDefinition(MatchRules(), DAY), tmp_path / "outcomes.parquet")


def match_alone(folder: Path, order_id: str) -> list[str]:
    """One run in its own engine: load, match, read back the order ids."""
    with SparkEngine(EngineSettings(), folder / "work") as engine:
        engine.load("ledger", table(record(order_id)))
        engine.load("channel", table(record(order_id)))
        engine.load("pool", pa.Table.from_pylist([], POOL).to_reader())
        engine.match(MatchDefinition(MatchRules(), DAY), folder / "outcomes.parquet")
    return pq.read_table(folder / "outcomes.parquet").column("order_id").to_pylist()


def test_concurrent_runs_do_not_see_each_others_records(tmp_path: Path) -> None:
    order_ids = ["first", "second", "third"]
    with ThreadPoolExecutor(len(order_ids)) as threads:
        found = list(threads.map(lambda oid: match_alone(tmp_path / oid, oid), order_ids))
    assert found == [[oid] for oid in order_ids]


# -- the command line --------------------------------------------------------------------

RUN_SPECIFIC = ("run_id", "seconds", "engine")


def reconcile(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["reconcile", *args, "--json", "--no-cases"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def test_the_cli_runs_spark_with_the_same_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(tmp_path / "home"))
    made = generate_day("alipay", DAY, 250, tmp_path / "in", seed=3, discrepancy_rate=0.1)
    inputs = [*(f"--bill={bill}" for bill in made.bills), f"--ledger={made.ledger}"]
    inputs += ["--channel=alipay", f"--date={DAY}"]
    spark_options = ["--spark-master", "local[2]", "--spark-conf", "spark.sql.shuffle.partitions=2"]
    code, on_spark = reconcile(capsys, *inputs, "--out=spark", "--engine=spark", *spark_options)
    duckdb_code, on_duckdb = reconcile(capsys, *inputs, "--out=duckdb", "--engine=duckdb")
    assert (code, duckdb_code) == (1, 1)  # discrepancies found, on both
    assert (on_spark["engine"], on_duckdb["engine"]) == ("spark", "duckdb")
    for name in RUN_SPECIFIC:
        del on_spark[name], on_duckdb[name]
    assert on_spark == on_duckdb


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine=duckdb", "--spark-master=local[2]"], "need --engine spark"),
        (["--engine=spark", "--spark-conf=no-equals-sign"], "is not KEY=VALUE"),
        (["--engine=flink"], "'flink' is not one of"),
    ],
)
def test_engine_options_are_checked_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(tmp_path / "home"))
    bill = tmp_path / "bill.csv"
    bill.write_text("")
    args = ["--channel=wechat", f"--bill={bill}", "--ledger=l.csv", f"--date={DAY}", "--out=o"]
    code = main(["reconcile", *args, *options])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
