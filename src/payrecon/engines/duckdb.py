"""The embedded default engine: DuckDB, out-of-core within ``memory_limit``.

Inputs are streamed into tables of an on-disk database in the run's work folder, so
DuckDB can spill to ``temp_directory`` instead of growing; the match writes its result
straight to Parquet.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from payrecon.config import EngineSettings
from payrecon.engines.base import Engine, Relation
from payrecon.engines.definition import MatchDefinition
from payrecon.errors import RunError


def connect(
    settings: EngineSettings, database: Path | str = ":memory:"
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection bounded by the configured memory limit, in UTC."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": settings.memory_limit,
        "preserve_insertion_order": False,
    }
    if settings.threads:
        config["threads"] = settings.threads
    if settings.temp_directory:
        config["temp_directory"] = str(settings.temp_directory)
    con = duckdb.connect(str(database), config=config)
    # icu is built in but loaded lazily; UTC keeps TIMESTAMPTZ output zone-stable.
    con.execute("LOAD icu; SET TimeZone = 'UTC'")
    return con


class DuckDBEngine(Engine):
    name = "duckdb"

    def __init__(self, settings: EngineSettings, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        tuned = settings.model_copy(
            update={"temp_directory": settings.temp_directory or workdir / "spill"}
        )
        self._con = connect(tuned, workdir / "engine.duckdb")

    def load(self, relation: Relation, records: pa.RecordBatchReader) -> int:
        self._con.from_arrow(records).create(relation)
        ((count,),) = self._con.execute(f"SELECT count(*) FROM {relation}").fetchall()
        return int(count)

    def match(self, definition: MatchDefinition, outcomes: Path) -> None:
        target = str(outcomes).replace("'", "''")
        try:
            self._con.execute(
                f"COPY ({definition.sql('duckdb')}) TO '{target}' "
                "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
            )
        except duckdb.Error as exc:
            raise RunError(f"the match failed in DuckDB: {exc}") from exc

    def close(self) -> None:
        self._con.close()
