"""The Spark engine's pieces that need no JVM: Parquet in, part files out, install hints.

The engine itself runs in ``tests/conformance`` against DuckDB, on a real local Spark.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import payrecon.engines.spark as spark_engine
from payrecon.config import EngineSettings
from payrecon.core.outcomes import OUTCOMES, POOL
from payrecon.core.rules import MatchRules
from payrecon.core.schema import CANONICAL
from payrecon.engines.base import create_engine
from payrecon.engines.definition import MatchDefinition
from payrecon.errors import ConfigError, DependencyError
from tests.conftest import DAY, record


def canonical_batches(count: int) -> pa.RecordBatchReader:
    rows = [record(f"o{n}", line_no=n) for n in range(count)]
    batches = [pa.RecordBatch.from_pylist([row], CANONICAL) for row in rows]
    return pa.RecordBatchReader.from_batches(CANONICAL, iter(batches))


def test_inputs_are_written_in_bounded_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spark_engine, "_ROW_GROUP_ROWS", 4)
    target = tmp_path / "ledger.parquet"
    assert spark_engine.write_parquet(canonical_batches(10), target, CANONICAL) == 10
    metadata = pq.ParquetFile(target).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [4, 4, 2]
    assert pq.read_table(target).column("order_id").to_pylist() == [f"o{n}" for n in range(10)]


def test_an_empty_input_still_has_its_columns(tmp_path: Path) -> None:
    target = tmp_path / "pool.parquet"
    empty = pa.RecordBatchReader.from_batches(POOL, iter([]))
    assert spark_engine.write_parquet(empty, target, POOL) == 0
    assert pq.read_schema(target).equals(POOL, check_metadata=False)


def test_batches_with_looser_types_are_cast_to_the_relation(tmp_path: Path) -> None:
    loose = pa.schema([field.with_nullable(True) for field in CANONICAL])
    batch = pa.RecordBatch.from_pylist([record("a")], loose)
    target = tmp_path / "channel.parquet"
    spark_engine.write_parquet(pa.RecordBatchReader.from_batches(loose, [batch]), target, CANONICAL)
    assert pq.read_schema(target).equals(CANONICAL, check_metadata=False)


def spark_like_part(path: Path, order_ids: list[str]) -> None:
    """A part file as Spark writes one: INT96-style naive timestamps, required columns."""
    columns = {}
    for field in OUTCOMES:
        if field.name == "order_id":
            columns[field.name] = pa.array(order_ids, pa.string())
        elif field.name == "outcome":
            columns[field.name] = pa.array(["MATCHED"] * len(order_ids), pa.string())
        elif pa.types.is_timestamp(field.type):
            moment = datetime(2026, 11, 20, 4, 0, 1, 123456)
            columns[field.name] = pa.array([moment] * len(order_ids), pa.timestamp("ns"))
        else:
            columns[field.name] = pa.nulls(len(order_ids), field.type)
    schema = pa.schema(
        [
            pa.field(name, array.type, nullable=name not in ("order_id", "outcome"))
            for name, array in columns.items()
        ]
    )
    pq.write_table(pa.table(columns, schema=schema), path)


def test_part_files_merge_into_one_file_of_the_outcomes_schema(tmp_path: Path) -> None:
    parts = tmp_path / "outcomes.spark"
    parts.mkdir()
    spark_like_part(parts / "part-00000-x-c000.snappy.parquet", ["a", "b"])
    spark_like_part(parts / "part-00001-x-c000.snappy.parquet", ["c"])
    (parts / "_SUCCESS").write_text("")
    (parts / ".part-00000-x-c000.snappy.parquet.crc").write_bytes(b"\0")
    target = tmp_path / "outcomes.parquet"
    spark_engine.merge_parts(parts, target)
    merged = pq.read_table(target)
    assert merged.schema.equals(OUTCOMES, check_metadata=False)
    assert merged.column("order_id").to_pylist() == ["a", "b", "c"]
    moment = merged.column("ledger_txn_time")[0].as_py()
    assert moment == datetime(2026, 11, 20, 4, 0, 1, 123456, tzinfo=UTC)


def test_no_part_files_give_an_empty_outcomes_file(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    spark_engine.merge_parts(tmp_path / "parts", tmp_path / "outcomes.parquet")
    merged = pq.read_table(tmp_path / "outcomes.parquet")
    assert merged.num_rows == 0
    assert merged.schema.equals(OUTCOMES, check_metadata=False)


def test_without_pyspark_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None)
    with pytest.raises(DependencyError, match=r"payrecon\[spark\]"):
        create_engine("spark", settings=EngineSettings(), workdir=tmp_path)


def test_spark_connect_without_its_client_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyspark.sql.connect.session", None)
    settings = EngineSettings(spark_master="sc://spark.example:15002")
    with pytest.raises(DependencyError, match=r"pyspark\[connect\]"):
        spark_engine.open_session(settings, tmp_path)


def test_unknown_engine_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="available: duckdb, spark"):
        create_engine("flink", settings=EngineSettings(), workdir=tmp_path)


def test_engine_settings_take_spark_master_and_conf() -> None:
    settings = EngineSettings.model_validate(
        {"name": "spark", "spark_master": "yarn", "spark_conf": {"spark.executor.memory": "4g"}}
    )
    assert (settings.name, settings.spark_master) == ("spark", "yarn")
    assert settings.spark_conf == {"spark.executor.memory": "4g"}


def test_spark_ranks_every_record_in_one_window_duckdb_only_duplicates() -> None:
    definition = MatchDefinition(MatchRules(), DAY)
    duckdb_sql, spark_sql = definition.sql("duckdb"), definition.sql("spark")
    assert "ledger_dupkeys" in duckdb_sql
    assert "ledger_dupkeys" not in spark_sql
    # The same ordering decides which record is first, on every engine.
    for sql in (duckdb_sql, spark_sql):
        assert sql.count("ORDER BY a.carried_from NULLS LAST") == 2
