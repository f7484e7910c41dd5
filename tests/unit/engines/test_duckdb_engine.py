"""The DuckDB engine's out-of-core passes give the same answer as one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

import payrecon.engines.duckdb as duckdb_engine
from payrecon.engines.duckdb import memory_limit_mib
from payrecon.errors import RunError
from tests.unit.service.test_truth import outcome_rows, run_day


@pytest.mark.parametrize(
    ("text", "mib"),
    [("512MB", 512), ("2GB", 2048), ("1.5GiB", 1536), ("256 mb", 256), ("1TB", 1024**2)],
)
def test_memory_limit_text(text: str, mib: int) -> None:
    assert memory_limit_mib(text) == mib


def test_memory_limit_text_must_have_a_unit() -> None:
    with pytest.raises(RunError, match="memory_limit"):
        memory_limit_mib("lots")


@pytest.mark.parametrize("channel", ["wechat", "alipay"])
def test_many_passes_reproduce_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, channel: str
) -> None:
    passes: list[int] = []
    original = duckdb_engine.DuckDBEngine.passes

    def recorded(self: duckdb_engine.DuckDBEngine) -> int:
        passes.append(original(self))
        return passes[-1]

    # One record per MiB of the limit: a few thousand records need every bucket its pass.
    monkeypatch.setattr(duckdb_engine, "RECORDS_PER_MIB", 1)
    monkeypatch.setattr(duckdb_engine.DuckDBEngine, "passes", recorded)
    made, result = run_day(tmp_path, channel, rows=6000, rate=0.1, seed=11)
    assert passes == [duckdb_engine.BUCKETS]
    assert outcome_rows(result.out / "outcomes.parquet") == outcome_rows(made.truth)
